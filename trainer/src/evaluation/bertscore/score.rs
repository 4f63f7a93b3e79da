//! BERTScore as `bert_score` 0.3.x computes it.
//!
//! Per candidate-reference pair: both are tokenised with their special tokens, encoded, and their
//! token embeddings (after `num_layers` layers) L2-normalised; precision is the idf-weighted mean,
//! over candidate tokens, of the best cosine with any reference token (recall the other way
//! round), F = 2PR/(P+R). Special tokens take part in the matching but weigh 0. idf weights are
//! computed on the (flattened) references: ln((M+1)/(df+1)), unseen tokens ln(M+1); without idf
//! every token weighs 1. With several references, P, R and F are each the maximum over them, as
//! bert_score does. Optional rescaling: (x - b)/(1 - b) with b from a baseline file.
//!
//! One quirk is reproduced on purpose: bert_score scores (candidate, reference) pairs in batches of
//! 64, zero-pads each batch to its longest sentences and multiplies the similarity matrix by the
//! padding mask, so a padded position offers a similarity of 0. A token whose every real
//! similarity is negative then scores 0 instead. [`ScorerOptions::pair_batch_size`] (64, as
//! bert_score's default) makes ours identical.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use tokenizers::Tokenizer;

use super::cpu::CpuEncoder;
use super::loader;
use super::model::BertModel;

#[derive(Debug, Clone)]
pub struct ScorerOptions {
    /// Layers to run (bert_score's `num_layers`); all the model has when `None`.
    pub num_layers: Option<usize>,
    /// Sentences encoded together.
    pub batch_size: usize,
    /// Pairs bert_score scores together (its `batch_size`), which decides where its zero padding
    /// takes part in the matching (see the module docs).
    pub pair_batch_size: usize,
}

impl Default for ScorerOptions {
    fn default() -> Self {
        ScorerOptions {
            num_layers: None,
            // Measured on 2 cores with MiniLM and the CPU encoder (`scripts/bench-bertscore`'s
            // corpus): 128 and 256 take the same time (64 2% more, 512 and 1024 8-15% more), and
            // 128 keeps the peak resident set at 197 MiB instead of 235.
            batch_size: 128,
            pair_batch_size: 64,
        }
    }
}

/// Per-candidate scores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub p: Vec<f64>,
    pub r: Vec<f64>,
    pub f: Vec<f64>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

impl Scores {
    pub fn means(&self) -> (f64, f64, f64) {
        (mean(&self.p), mean(&self.r), mean(&self.f))
    }

    /// Rescales with a baseline (P, R, F): (x - b) / (1 - b).
    pub fn rescale(&mut self, baseline: (f64, f64, f64)) {
        let r = |v: &mut Vec<f64>, b: f64| v.iter_mut().for_each(|x| *x = (*x - b) / (1.0 - b));
        r(&mut self.p, baseline.0);
        r(&mut self.r, baseline.1);
        r(&mut self.f, baseline.2);
    }
}

/// Reads bert_score's baseline file (`LAYER,P,R,F` rows; commas or tabs) and returns the row of
/// `layer`.
pub fn read_baseline(path: &Path, layer: usize) -> Result<(f64, f64, f64)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    for (i, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split([',', '\t']).map(str::trim).collect();
        if fields.len() != 4 {
            bail!("{}:{}: expected LAYER,P,R,F", path.display(), i + 1);
        }
        let num = |s: &str| -> Result<f64> {
            s.parse()
                .with_context(|| format!("{}:{}: {s:?} is not a number", path.display(), i + 1))
        };
        if num(fields[0])? as usize == layer {
            return Ok((num(fields[1])?, num(fields[2])?, num(fields[3])?));
        }
    }
    bail!("{}: no baseline for layer {layer}", path.display())
}

/// The encoder a scorer runs: on flex the CPU encoder (the same computation, without burn's
/// padding and per-operation passes: `cpu`'s docs), elsewhere the burn module.
#[derive(Debug)]
enum Encoder {
    Cpu(CpuEncoder),
    Burn {
        model: Box<BertModel>,
        device: Device,
    },
}

/// A loaded encoder and tokenizer.
#[derive(Debug)]
pub struct BertScorer {
    encoder: Encoder,
    tokenizer: Tokenizer,
    num_layers: usize,
    batch_size: usize,
    pair_batch_size: usize,
    max_len: usize,
    special: [u32; 2],
}

impl BertScorer {
    /// Loads a Hugging Face folder (config.json, model.safetensors, tokenizer.json).
    pub fn load(dir: &Path, options: &ScorerOptions, device: &Device) -> Result<BertScorer> {
        if !dir.is_dir() {
            bail!(
                "no BERTScore model at {}: run `trainer assets fetch minilm` or pass --bertscore-model DIR",
                dir.display()
            );
        }
        let checkpoint = loader::read_checkpoint(dir)?;
        let config = checkpoint.config.clone();
        let num_layers = options.num_layers.unwrap_or(config.num_hidden_layers);
        if num_layers > config.num_hidden_layers {
            bail!(
                "--num-layers {num_layers}: the model has {} layers",
                config.num_hidden_layers
            );
        }
        let path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // bert_score encodes one sentence at a time: no padding, and truncation handled here.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let (cls, sep) = if config.is_roberta() {
            ("<s>", "</s>")
        } else {
            ("[CLS]", "[SEP]")
        };
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .with_context(|| format!("{}: no {t} token", path.display()))
        };
        let special = [id(cls)?, id(sep)?];
        let offset = if config.is_roberta() {
            config.pad_token_id + 1
        } else {
            0
        };
        let encoder = if *device == Device::flex() {
            Encoder::Cpu(CpuEncoder::new(checkpoint))
        } else {
            Encoder::Burn {
                model: Box::new(loader::build(checkpoint, device)),
                device: device.clone(),
            }
        };
        Ok(BertScorer {
            encoder,
            tokenizer,
            num_layers,
            batch_size: options.batch_size.max(1),
            pair_batch_size: options.pair_batch_size.max(1),
            max_len: config
                .max_position_embeddings
                .saturating_sub(offset)
                .min(512),
            special,
        })
    }

    pub fn num_layers(&self) -> usize {
        self.num_layers
    }

    /// Token ids of a sentence with its special tokens (bert_score's `sent_encode`).
    pub fn encode(&self, sentence: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(sentence.trim(), true)
            .map_err(|e| anyhow::anyhow!("tokenizing {sentence:?}: {e}"))?;
        let mut ids = encoding.get_ids().to_vec();
        if ids.len() > self.max_len {
            let last = *ids.last().expect("non-empty");
            ids.truncate(self.max_len - 1);
            ids.push(last);
        }
        Ok(ids)
    }

    /// Token ids and L2-normalised token embeddings ([tokens][hidden]) of each sentence.
    ///
    /// Batches are encoded on as many threads as the machine has cores (at most one per batch):
    /// the CPU encoder runs a batch on the calling thread only, element-wise work included, so
    /// one batch per core keeps every core busy (burn's module on flex likewise ran its
    /// element-wise operations on the calling thread). Each batch is computed exactly as alone,
    /// so the numbers do not depend on the thread count.
    fn embed(
        &self,
        sentences: &[&str],
        tokens: &HashMap<&str, Vec<u32>>,
    ) -> Result<HashMap<String, Encoded>> {
        let mut encoded: Vec<(&str, &[u32])> = sentences
            .iter()
            .map(|s| (*s, tokens[s].as_slice()))
            .collect();
        // Batches of similar length waste little on padding (burn's module) and start with the
        // longest, so that the threads finish together.
        encoded.sort_by_key(|(_, ids)| std::cmp::Reverse(ids.len()));
        let batches: Vec<&[(&str, &[u32])]> = encoded.chunks(self.batch_size).collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(batches.len())
            .max(1);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let encode_batches = || -> Result<Vec<(String, Encoded)>> {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(batch) = batches.get(i) else {
                    return Ok(out);
                };
                out.extend(self.embed_batch(batch)?);
            }
        };
        let parts: Vec<Result<Vec<(String, Encoded)>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (1..threads).map(|_| scope.spawn(encode_batches)).collect();
            let mut parts = vec![encode_batches()];
            parts.extend(
                workers
                    .into_iter()
                    .map(|w| w.join().expect("an encoding thread panicked")),
            );
            parts
        });
        let mut out = HashMap::with_capacity(encoded.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// One batch through the encoder: each sentence's ids and normalised token rows.
    fn embed_batch(&self, batch: &[(&str, &[u32])]) -> Result<Vec<(String, Encoded)>> {
        let ids: Vec<&[u32]> = batch.iter().map(|(_, ids)| *ids).collect();
        // Where sentence b's first row starts in `values`, and the row length.
        let (values, starts, h): (Vec<f32>, Vec<usize>, usize) = match &self.encoder {
            Encoder::Cpu(cpu) => {
                let values = cpu.forward(&ids, self.num_layers);
                let starts = ids
                    .iter()
                    .scan(0, |row, ids| {
                        let start = *row;
                        *row += ids.len();
                        Some(start)
                    })
                    .collect();
                (values, starts, cpu.hidden_size())
            }
            Encoder::Burn { model, device } => {
                // Right-padded to the longest sentence.
                let ids: Vec<Vec<u32>> = ids.iter().map(|ids| ids.to_vec()).collect();
                let hidden = model.forward(&ids, self.num_layers, device);
                let [_, t, h] = hidden.dims();
                let values = hidden
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| anyhow::anyhow!("reading embeddings: {e:?}"))?;
                (values, (0..ids.len()).map(|b| b * t).collect(), h)
            }
        };
        Ok(batch
            .iter()
            .zip(starts)
            .map(|((sentence, ids), start)| {
                let mut rows = values[start * h..(start + ids.len()) * h].to_vec();
                for row in rows.chunks_exact_mut(h) {
                    let norm = row
                        .iter()
                        .map(|x| x * x)
                        .sum::<f32>()
                        .sqrt()
                        .max(f32::MIN_POSITIVE);
                    row.iter_mut().for_each(|x| *x /= norm);
                }
                (
                    (*sentence).to_owned(),
                    Encoded {
                        ids: ids.to_vec(),
                        rows,
                        dim: h,
                    },
                )
            })
            .collect())
    }

    /// Scores each candidate against its references (`refs[i]` for `cands[i]`); with `idf`, the
    /// idf weights come from these references (bert_score's `compute_idf` on them).
    pub fn score(&self, cands: &[String], refs: &[Vec<String>], idf: bool) -> Result<Scores> {
        let flat: Vec<&str> = refs.iter().flatten().map(String::as_str).collect();
        let tokens = self.tokenize(cands.iter().map(String::as_str).chain(flat.iter().copied()))?;
        let weights = self.idf_weights(&flat, idf, &tokens);
        self.score_weighted(cands, refs, &weights, &tokens)
    }

    /// Each distinct sentence's token ids, tokenised once.
    fn tokenize<'a>(
        &self,
        sentences: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<&'a str, Vec<u32>>> {
        let mut tokens = HashMap::new();
        for sentence in sentences {
            if !tokens.contains_key(sentence) {
                tokens.insert(sentence, self.encode(sentence)?);
            }
        }
        Ok(tokens)
    }

    /// Scores as [`BertScorer::score`] does, with idf weights computed on `idf_from` instead of
    /// the references scored against (MILAN scores its annotators against two references with
    /// the idf of all three).
    pub fn score_with_idf(
        &self,
        cands: &[String],
        refs: &[Vec<String>],
        idf_from: &[&str],
    ) -> Result<Scores> {
        let tokens = self.tokenize(
            cands
                .iter()
                .chain(refs.iter().flatten())
                .map(String::as_str)
                .chain(idf_from.iter().copied()),
        )?;
        let weights = self.idf_weights(idf_from, true, &tokens);
        self.score_weighted(cands, refs, &weights, &tokens)
    }

    fn score_weighted(
        &self,
        cands: &[String],
        refs: &[Vec<String>],
        weights: &IdfWeights,
        tokens: &HashMap<&str, Vec<u32>>,
    ) -> Result<Scores> {
        if cands.len() != refs.len() {
            bail!(
                "{} candidates but {} reference lists",
                cands.len(),
                refs.len()
            );
        }
        let flat: Vec<&str> = refs.iter().flatten().map(String::as_str).collect();
        let mut unique: Vec<&str> = cands
            .iter()
            .map(String::as_str)
            .chain(flat.iter().copied())
            .collect();
        unique.sort_unstable();
        unique.dedup();
        let started = std::time::Instant::now();
        let embeddings = self.embed(&unique, tokens)?;
        tracing::info!(
            "encoded {} sentences ({} tokens) in {:.2?}",
            unique.len(),
            embeddings.values().map(|e| e.ids.len()).sum::<usize>(),
            started.elapsed()
        );
        let started = std::time::Instant::now();
        let lengths: HashMap<&str, usize> = unique
            .iter()
            .map(|s| (*s, embeddings[*s].ids.len()))
            .collect();
        // Pairs in bert_score's order: each candidate with each of its references.
        let pairs: Vec<(usize, &str)> = refs
            .iter()
            .enumerate()
            .flat_map(|(i, group)| group.iter().map(move |r| (i, r.as_str())))
            .collect();
        let mut best = vec![(f64::MIN, f64::MIN, f64::MIN); cands.len()];
        for batch in pairs.chunks(self.pair_batch_size) {
            let longest_ref = batch.iter().map(|(_, r)| lengths[r]).max().unwrap_or(0);
            let longest_cand = batch
                .iter()
                .map(|(i, _)| lengths[cands[*i].as_str()])
                .max()
                .unwrap_or(0);
            for &(i, reference) in batch {
                let cand = cands[i].as_str();
                let padding = (
                    lengths[reference] < longest_ref,
                    lengths[cand] < longest_cand,
                );
                let (p, r, f) = self.pair(cand, reference, &embeddings, weights, padding)?;
                let b = &mut best[i];
                *b = (b.0.max(p), b.1.max(r), b.2.max(f));
            }
        }
        tracing::info!("matched {} pairs in {:.2?}", pairs.len(), started.elapsed());
        let mut scores = Scores::default();
        for (i, group) in refs.iter().enumerate() {
            if group.is_empty() {
                bail!("candidate {:?} has no reference", cands[i]);
            }
            scores.p.push(best[i].0);
            scores.r.push(best[i].1);
            scores.f.push(best[i].2);
        }
        Ok(scores)
    }

    /// `tokens` holds the ids of every sentence of `refs`.
    fn idf_weights(
        &self,
        refs: &[&str],
        idf: bool,
        tokens: &HashMap<&str, Vec<u32>>,
    ) -> IdfWeights {
        let default = if idf {
            ((refs.len() + 1) as f64).ln()
        } else {
            1.0
        };
        let mut weights = HashMap::new();
        if idf {
            let mut df: HashMap<u32, usize> = HashMap::new();
            for r in refs {
                let ids: HashSet<u32> = tokens[r].iter().copied().collect();
                for id in ids {
                    *df.entry(id).or_insert(0) += 1;
                }
            }
            let m = refs.len() as f64;
            for (id, count) in df {
                weights.insert(id, ((m + 1.0) / (count as f64 + 1.0)).ln());
            }
        }
        for id in self.special {
            weights.insert(id, 0.0);
        }
        IdfWeights { weights, default }
    }

    fn pair(
        &self,
        cand: &str,
        reference: &str,
        embeddings: &HashMap<String, Encoded>,
        weights: &IdfWeights,
        (ref_padded, cand_padded): (bool, bool),
    ) -> Result<(f64, f64, f64)> {
        let (ce, re) = (&embeddings[cand], &embeddings[reference]);
        let (c_ids, r_ids) = (&ce.ids, &re.ids);
        // Cosine similarities, [candidate token, reference token].
        let cols = r_ids.len();
        let sim = super::cpu::times_transposed(&ce.rows, &re.rows, ce.dim);
        let weighted = |ids: &[u32], best: &dyn Fn(usize) -> f64| -> f64 {
            let (mut total, mut sum) = (0.0, 0.0);
            for (i, id) in ids.iter().enumerate() {
                let w = weights.get(*id);
                total += w;
                sum += w * best(i);
            }
            if total == 0.0 { 0.0 } else { sum / total }
        };
        // A padded batch offers similarity 0 at its padding (bert_score's masking).
        let floor = |padded: bool| if padded { 0.0 } else { f64::MIN };
        let p = weighted(c_ids, &|i| {
            sim[i * cols..(i + 1) * cols]
                .iter()
                .map(|s| f64::from(*s))
                .fold(floor(ref_padded), f64::max)
        });
        let rec = weighted(r_ids, &|j| {
            sim[j..]
                .iter()
                .step_by(cols)
                .map(|s| f64::from(*s))
                .fold(floor(cand_padded), f64::max)
        });
        let f = if p + rec == 0.0 {
            0.0
        } else {
            2.0 * p * rec / (p + rec)
        };
        Ok((p, rec, f))
    }
}

/// A sentence's token ids and its normalised token embeddings ([ids.len(), dim], row-major).
struct Encoded {
    ids: Vec<u32>,
    rows: Vec<f32>,
    dim: usize,
}

struct IdfWeights {
    weights: HashMap<u32, f64>,
    default: f64,
}

impl IdfWeights {
    fn get(&self, id: u32) -> f64 {
        self.weights.get(&id).copied().unwrap_or(self.default)
    }
}
