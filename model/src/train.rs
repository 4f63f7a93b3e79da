//! Training the captioner and the language model (milan-reference.md section 3): AdamW, early
//! stopping with the best weights restored, atomic checkpoints that `--resume` continues from.
//!
//! A run's folder holds `config.json`, `vocab.json`, `captioner.bpk` and `lm.bpk` (the best
//! weights), `history.json` (which the trainer plots as `learning-curve.png`), and
//! `state/<phase>-<epoch>/` (the last epoch's
//! weights, optimizer state and progress; written in a temporary folder and renamed, so a killed
//! run resumes from the last whole epoch).
//!
//! Reproducibility: the weights are initialised after seeding the device with the run's seed; each
//! epoch reseeds it (dropout) and shuffles with its own ChaCha8 stream, both derived from (seed,
//! phase, epoch), so a resumed run continues exactly as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use milan_metrics::bleu::{BleuConfig, corpus_bleu};
use milan_metrics::normalize;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::decoding::{DecodeConfig, greedy};
use crate::model::{Captioner, CaptionerConfig, LanguageModel, LanguageModelConfig};
use crate::units::Units;
use crate::vocab::{Vocabulary, pad};

/// Every number of a MILAN run; the defaults are the reference's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MilanConfig {
    pub embedding: usize,
    pub hidden: usize,
    /// The attention's hidden size; min(512, feature dims) when absent.
    pub attention: Option<usize>,
    pub dropout: f64,
    /// Tokens per description, the stop token included.
    pub max_tokens: usize,
    pub lm_embedding: usize,
    pub lm_hidden: usize,
    pub lm_layers: usize,
    pub lm_dropout: f64,
    pub batch: usize,
    pub learning_rate: f64,
    pub weight_decay: f32,
    /// AdamW's epsilon: PyTorch's default (burn's is 1e-5).
    pub epsilon: f32,
    pub max_epochs: usize,
    /// Epochs without a better validation BLEU before stopping.
    pub patience: usize,
    /// Weight of the doubly stochastic attention penalty.
    pub attention_weight: f64,
    /// What picks the captioner's best epoch: validation BLEU of greedy captions (the
    /// reference), or the validation loss (for corpora of very short descriptions, where corpus
    /// BLEU-4 of the validation set is often 0 and BLEU stops training early).
    pub early_stopping: EarlyStopping,
    pub lm_batch: usize,
    pub lm_max_epochs: usize,
    pub lm_patience: usize,
    pub decode: DecodeConfig,
}

impl Default for MilanConfig {
    fn default() -> Self {
        MilanConfig {
            embedding: 128,
            hidden: 512,
            attention: None,
            dropout: 0.5,
            max_tokens: 15,
            lm_embedding: 128,
            lm_hidden: 512,
            lm_layers: 2,
            lm_dropout: 0.5,
            batch: 64,
            learning_rate: 1e-3,
            weight_decay: 0.01,
            epsilon: 1e-8,
            max_epochs: 100,
            patience: 4,
            attention_weight: 1.0,
            early_stopping: EarlyStopping::Best,
            lm_batch: 128,
            lm_max_epochs: 100,
            lm_patience: 4,
            decode: DecodeConfig::default(),
        }
    }
}

impl MilanConfig {
    pub fn captioner(&self, feature_dim: usize, vocab: usize) -> CaptionerConfig {
        CaptionerConfig::new(feature_dim, vocab)
            .with_embedding(self.embedding)
            .with_hidden(self.hidden)
            .with_attention(self.attention)
            .with_dropout(self.dropout)
            .with_max_tokens(self.max_tokens)
    }

    pub fn language_model(&self, vocab: usize) -> LanguageModelConfig {
        LanguageModelConfig::new(vocab)
            .with_embedding(self.lm_embedding)
            .with_hidden(self.lm_hidden)
            .with_layers(self.lm_layers)
            .with_dropout(self.lm_dropout)
    }
}

/// How training stops and which weights it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EarlyStopping {
    /// Stop after `patience` epochs without a better validation BLEU (ties to the lower loss);
    /// restore the best epoch. (`bleu` in configurations written before `reference` existed.)
    #[serde(alias = "bleu")]
    Best,
    /// As `best`, ranked by the validation loss.
    Loss,
    /// As the reference code runs (its `training.EarlyStopping` and `Decoder.fit`): an epoch
    /// improves only on a strictly higher validation BLEU (strictly lower loss for the language
    /// model); training stops when more than `patience` epochs in a row did not improve; the
    /// last epoch's weights are kept, because the reference's "restore" loads a `state_dict()`
    /// that was never copied and so holds the current weights. `trainer fit` uses patience 10 for
    /// within-network experiments in this mode, as the reference's scripts do.
    Reference,
}

/// The within-network patience of `early_stopping = reference`.
pub const REFERENCE_WITHIN_NETWORK_PATIENCE: usize = 10;

/// The early-stopping rule as a state machine, one validation result at a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stopper {
    pub rule: EarlyStopping,
    pub patience: usize,
    /// Best (score, loss) so far.
    pub best: (f64, f64),
    pub bad_epochs: usize,
}

impl Stopper {
    pub fn new(rule: EarlyStopping, patience: usize) -> Stopper {
        Stopper {
            rule,
            patience,
            best: (f64::NEG_INFINITY, f64::INFINITY),
            bad_epochs: 0,
        }
    }

    /// Records an epoch's ranked (score, loss); returns whether it improved.
    pub fn observe(&mut self, ranked: (f64, f64)) -> bool {
        let improved = match self.rule {
            EarlyStopping::Reference => ranked.0 > self.best.0,
            _ => better(ranked, self.best),
        };
        if improved {
            self.best = ranked;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        improved
    }

    /// Whether training stops now.
    pub fn stop(&self) -> bool {
        match self.rule {
            EarlyStopping::Reference => self.bad_epochs > self.patience,
            _ => self.bad_epochs >= self.patience,
        }
    }

    /// Whether the weights kept are the last epoch's rather than the best's.
    pub fn keeps_last(&self) -> bool {
        self.rule == EarlyStopping::Reference
    }
}

/// What a checkpoint's `config.json` records besides the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub config: MilanConfig,
    pub encoder: String,
    pub feature_dim: usize,
    pub seed: u64,
    pub backend: String,
    /// The released MILAN the run was fine-tuned from (`fit --init-from`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
}

/// Weights a run starts from instead of a random initialisation (`fit --init-from`): both
/// models saved as burn records, with the vocabulary they index and the configuration whose
/// sizes they have.
#[derive(Debug, Clone)]
pub struct InitFrom {
    pub name: String,
    pub dir: PathBuf,
    pub vocab: Vocabulary,
    pub feature_dim: usize,
    pub config: MilanConfig,
}

pub use crate::history::{Epoch, History, better, rank};

/// A trained model: what decoding needs.
#[derive(Debug)]
pub struct Trained {
    pub captioner: Captioner,
    pub lm: LanguageModel,
    pub vocab: Vocabulary,
    pub info: RunInfo,
    pub history: History,
}

impl Trained {
    /// Describes every neuron of `corpus` (in its order) with PMI reranking under `decode`, or
    /// greedily; `progress` is told the neurons done after each batch.
    pub fn describe(
        &self,
        corpus: &dyn Units,
        decode: &crate::decoding::DecodeConfig,
        greedy: bool,
        device: &Device,
        mut progress: impl FnMut(usize),
    ) -> Vec<String> {
        let positions: Vec<usize> = (0..corpus.count()).collect();
        let mut out = Vec::with_capacity(positions.len());
        for chunk in positions.chunks(decode.neurons_per_batch.max(1)) {
            let features = corpus.features(chunk, device);
            let ids = if greedy {
                crate::decoding::greedy(&self.captioner, features)
            } else {
                crate::decoding::milan_pmi(&self.captioner, &self.lm, features, decode)
            };
            out.extend(ids.iter().map(|ids| self.vocab.decode(ids)));
            progress(chunk.len());
        }
        out
    }
}

pub fn save_module<M: Module>(module: M, path: &Path) -> Result<()> {
    let out = milan_shared::atomic::Pending::new(path)?;
    module
        .into_record()
        .save(out.path())
        .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", out.path().display()))?;
    out.commit()
}

pub fn load_module<M: Module>(module: M, path: &Path) -> Result<M> {
    let record = ModuleRecord::load(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e:?}", path.display()))?;
    module
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("{}: does not fit the model: {e:?}", path.display()))
}

/// The trial folder of `checkpoint`: itself when it holds a run, else the trial with the best
/// validation BLEU.
pub fn resolve_trial(checkpoint: &Path) -> Result<std::path::PathBuf> {
    if checkpoint.join("config.json").is_file() {
        return Ok(checkpoint.to_owned());
    }
    let mut best: Option<(f64, PathBuf)> = None;
    let entries = std::fs::read_dir(checkpoint)
        .with_context(|| format!("reading {}", checkpoint.display()))?;
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(text) = std::fs::read_to_string(dir.join("history.json")) else {
            continue;
        };
        let history: History = serde_json::from_str(&text)?;
        if let Some(e) = history.best_captioner()
            && best.as_ref().is_none_or(|b| e.validation > b.0)
        {
            best = Some((e.validation, dir));
        }
    }
    best.map(|b| b.1).with_context(|| {
        format!(
            "{}: no trained run here (expected config.json, or trial-*/ folders from `trainer fit`)",
            checkpoint.display()
        )
    })
}

/// Loads a trained run from its folder (what `fit` writes).
pub fn load(dir: &Path, device: &Device) -> Result<Trained> {
    let read = |name: &str| -> Result<String> {
        let p = dir.join(name);
        std::fs::read_to_string(&p).with_context(|| {
            format!(
                "reading {}: not a trained run (run `trainer fit` first)",
                p.display()
            )
        })
    };
    let info: RunInfo = serde_json::from_str(&read("config.json")?)
        .with_context(|| format!("{}/config.json", dir.display()))?;
    let tokens: Vec<String> = serde_json::from_str(&read("vocab.json")?)
        .with_context(|| format!("{}/vocab.json", dir.display()))?;
    let vocab = Vocabulary::from_tokens(tokens);
    let history: History = serde_json::from_str(&read("history.json")?).unwrap_or_default();
    let captioner = load_module(
        info.config
            .captioner(info.feature_dim, vocab.len())
            .init(device),
        &dir.join("captioner.bpk"),
    )?;
    let lm = load_module(
        info.config.language_model(vocab.len()).init(device),
        &dir.join("lm.bpk"),
    )?;
    Ok(Trained {
        captioner,
        lm,
        vocab,
        info,
        history,
    })
}

/// The (neuron, description) pairs of `positions`, three per annotated neuron.
fn samples(corpus: &dyn Units, positions: &[usize]) -> Vec<(usize, usize)> {
    positions
        .iter()
        .flat_map(|&p| (0..corpus.tokens(p).len()).map(move |d| (p, d)))
        .collect()
}

/// Greedy-decoded BLEU of the captioner on `positions` against their descriptions.
pub fn validation_bleu(
    captioner: &Captioner,
    corpus: &dyn Units,
    vocab: &Vocabulary,
    positions: &[usize],
    device: &Device,
) -> f64 {
    if positions.is_empty() {
        return 0.0;
    }
    let mut hyps = Vec::with_capacity(positions.len());
    for chunk in positions.chunks(64) {
        for ids in greedy(captioner, corpus.features(chunk, device)) {
            hyps.push(normalize(&vocab.decode(&ids)));
        }
    }
    let refs: Vec<Vec<String>> = positions
        .iter()
        .map(|&p| {
            corpus
                .descriptions(p)
                .iter()
                .map(|d| normalize(d))
                .collect()
        })
        .collect();
    corpus_bleu(&hyps, &refs, &BleuConfig::default()).score
}

/// The mean of a per-sample loss over `items`, in chunks of 256 (0 for no items).
fn mean_loss<T>(items: &[T], loss: impl Fn(&[T]) -> Tensor<1>) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    for chunk in items.chunks(256) {
        total += loss(chunk).into_scalar::<f32>() as f64 * chunk.len() as f64;
    }
    total / items.len() as f64
}

/// Progress written after every epoch, to resume from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Progress {
    epoch: usize,
    /// Best (score, loss) so far.
    best: (f64, f64),
    bad_epochs: usize,
    history: Vec<Epoch>,
}

/// One early-stopped training phase over a module.
struct Phase<'a> {
    name: &'static str,
    dir: &'a Path,
    seed: u64,
    batch: usize,
    max_epochs: usize,
    patience: usize,
    learning_rate: f64,
    weight_decay: f32,
    epsilon: f32,
    resume: bool,
    quiet: bool,
    by_loss: bool,
    rule: EarlyStopping,
}

fn phase_seed(seed: u64, name: &str, epoch: usize) -> u64 {
    let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    seed ^ salt ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The newest complete `state/<phase>-<epoch>` folder.
fn latest_state(dir: &Path, phase: &str) -> Option<(usize, PathBuf)> {
    let entries = std::fs::read_dir(dir.join("state")).ok()?;
    entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            let epoch: usize = name.strip_prefix(&format!("{phase}-"))?.parse().ok()?;
            path.join("progress.json")
                .is_file()
                .then_some((epoch, path))
        })
        .max_by_key(|(e, _)| *e)
}

impl Phase<'_> {
    fn best_path(&self) -> PathBuf {
        self.dir.join(format!("{}.bpk", self.name))
    }

    /// Trains `model` (on an autodiff device) on `items` in shuffled batches; `validate` scores
    /// the inference copy: (score, loss), a higher score better, ties to the lower loss. Returns the best weights on `device` (not
    /// autodiff) and the history.
    fn run<M: Module>(
        &self,
        mut model: M,
        items: usize,
        loss: impl Fn(&M, &[usize]) -> Tensor<1>,
        mut validate: impl FnMut(&M) -> (f64, f64),
        fresh: impl Fn() -> M,
        train_device: &Device,
    ) -> Result<(M, Vec<Epoch>)> {
        let mut optimizer = AdamWConfig::new()
            .with_weight_decay(self.weight_decay)
            .with_epsilon(self.epsilon)
            .init();
        let mut progress = Progress {
            epoch: 0,
            best: (f64::NEG_INFINITY, f64::INFINITY),
            bad_epochs: 0,
            history: Vec::new(),
        };
        if self.resume
            && let Some((_, state)) = latest_state(self.dir, self.name)
        {
            progress = serde_json::from_slice(&std::fs::read(state.join("progress.json"))?)
                .with_context(|| format!("{}/progress.json", state.display()))?;
            model = load_module(model, &state.join("model.bpk"))?;
            let record = burn::optim::OptimizerRecord::load(state.join("optimizer.bpk"))
                .map_err(|e| anyhow::anyhow!("{}/optimizer.bpk: {e:?}", state.display()))?;
            optimizer = optimizer.load_record(record);
            tracing::info!(phase = self.name, epoch = progress.epoch, "resuming");
        }
        let batches = items.div_ceil(self.batch.max(1));
        let bar = ProgressBar::new((self.max_epochs * batches) as u64).with_style(
            ProgressStyle::with_template("{prefix:>10} {bar:30} {msg} [{elapsed}]")
                .expect("valid template"),
        );
        if self.quiet {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_prefix(self.name);
        bar.set_position((progress.epoch * batches) as u64);
        let mut stopper = Stopper {
            best: progress.best,
            bad_epochs: progress.bad_epochs,
            ..Stopper::new(self.rule, self.patience)
        };
        while progress.epoch < self.max_epochs && !stopper.stop() {
            let epoch = progress.epoch + 1;
            let started = Instant::now();
            let seed = phase_seed(self.seed, self.name, epoch);
            train_device.seed(seed);
            let mut order: Vec<usize> = (0..items).collect();
            milan_shared::random::shuffle_modulo(&mut order, &mut ChaCha8Rng::seed_from_u64(seed));
            let mut total = 0.0;
            let mut seen = 0usize;
            for chunk in order.chunks(self.batch.max(1)) {
                let l = loss(&model, chunk);
                let value = l.clone().into_scalar::<f32>() as f64;
                let grads = GradientsParams::from_grads(l.backward(), &model);
                model = optimizer.step(self.learning_rate, model, grads);
                total += value * chunk.len() as f64;
                seen += chunk.len();
                bar.inc(1);
                bar.set_message(format!(
                    "epoch {epoch} loss {:.3} | val {}",
                    total / seen as f64,
                    last_validation(&progress.history)
                ));
            }
            let (score, validation_loss) = validate(&model.valid());
            let record = Epoch {
                epoch,
                train_loss: total / seen.max(1) as f64,
                validation: score,
                validation_loss,
                seconds: started.elapsed().as_secs_f64(),
            };
            let ranked = rank(&record, self.by_loss);
            progress.history.push(record);
            if stopper.observe(ranked) || stopper.keeps_last() {
                save_module(model.valid(), &self.best_path())?;
            }
            progress.best = stopper.best;
            progress.bad_epochs = stopper.bad_epochs;
            progress.epoch = epoch;
            self.save_state(&model, &optimizer, &progress)?;
        }
        bar.finish_and_clear();
        if !self.best_path().is_file() {
            bail!("{}: no epoch was trained (max epochs 0?)", self.name);
        }
        let best = load_module(fresh(), &self.best_path())?;
        Ok((best, progress.history))
    }

    fn save_state<M: Module>(
        &self,
        model: &M,
        optimizer: &burn::optim::ModuleOptimizer,
        progress: &Progress,
    ) -> Result<()> {
        let states = self.dir.join("state");
        std::fs::create_dir_all(&states)?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&states)?;
        save_module(model.clone(), &tmp.path().join("model.bpk"))?;
        optimizer
            .to_record()
            .save(tmp.path().join("optimizer.bpk"))
            .map_err(|e| anyhow::anyhow!("writing optimizer state: {e:?}"))?;
        std::fs::write(
            tmp.path().join("progress.json"),
            serde_json::to_vec(progress)?,
        )?;
        let path = states.join(format!("{}-{}", self.name, progress.epoch));
        milan_shared::atomic::publish_dir(&tmp.keep(), &path)?;
        // Older states of this phase are no longer needed.
        for entry in std::fs::read_dir(&states)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(e) = name
                .strip_prefix(&format!("{}-", self.name))
                .and_then(|e| e.parse::<usize>().ok())
                && e < progress.epoch
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }
}

fn last_validation(history: &[Epoch]) -> String {
    history
        .last()
        .map_or_else(|| "-".to_owned(), |e| format!("{:.3}", e.validation))
}

/// Options of one training run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: MilanConfig,
    pub seed: u64,
    pub resume: bool,
    pub backend: String,
    /// Draw no progress bars (tests, nested runs).
    pub quiet: bool,
    /// Start from these weights (fine-tuning) instead of a random initialisation.
    pub init: Option<InitFrom>,
}

/// The vocabulary of a run: the checkpoint's when fine-tuning (after checking that its sizes fit
/// these features), else built from the training units' descriptions.
fn vocabulary(corpus: &dyn Units, train: &[usize], options: &RunOptions) -> Result<Vocabulary> {
    let config = &options.config;
    Ok(match &options.init {
        // The released weights index their own vocabulary; words it lacks are <unk>.
        Some(init) => {
            ensure!(
                init.feature_dim == corpus.dims(),
                "--init-from {} reads {}-wide features, but these ({}) are {}-wide: compute them \
                 with the checkpoint's encoder",
                init.name,
                init.feature_dim,
                corpus.encoder(),
                corpus.dims()
            );
            ensure!(
                init.config.captioner(corpus.dims(), 0) == config.captioner(corpus.dims(), 0)
                    && init.config.language_model(0) == config.language_model(0),
                "--init-from {}: the configuration's model sizes differ from the checkpoint's",
                init.name
            );
            init.vocab.clone()
        }
        None => Vocabulary::build(
            train
                .iter()
                .flat_map(|&p| corpus.tokens(p).iter().map(Vec::as_slice)),
        ),
    })
}

/// Checks that a resumed run continues the run in `dir` (or clears a stale run's state), then
/// writes `config.json` and `vocab.json`.
fn start_run(dir: &Path, info: &RunInfo, vocab: &Vocabulary, resume: bool) -> Result<()> {
    if resume && let Ok(old) = std::fs::read_to_string(dir.join("config.json")) {
        let old: RunInfo = serde_json::from_str(&old)?;
        // Resuming may train longer than the run first meant to; nothing else may change.
        let comparable = |c: &MilanConfig| MilanConfig {
            max_epochs: 0,
            lm_max_epochs: 0,
            ..c.clone()
        };
        if comparable(&old.config) != comparable(&info.config)
            || old.seed != info.seed
            || old.feature_dim != info.feature_dim
        {
            bail!(
                "{}: --resume with a different configuration or seed than the run there",
                dir.display()
            );
        }
    } else {
        let _ = std::fs::remove_dir_all(dir.join("state"));
    }
    milan_shared::atomic::write(&dir.join("config.json"), &serde_json::to_vec_pretty(info)?)?;
    let tokens: Vec<&str> = (0..vocab.len()).map(|i| vocab.token(i)).collect();
    milan_shared::atomic::write(&dir.join("vocab.json"), &serde_json::to_vec(&tokens)?)?;
    Ok(())
}

/// What both training phases read: every unit's descriptions encoded, and the (unit,
/// description) samples of the training and validation units.
struct Samples<'a> {
    corpus: &'a dyn Units,
    encoded: Vec<Vec<Vec<usize>>>,
    train: Vec<(usize, usize)>,
    validation: Vec<(usize, usize)>,
}

impl<'a> Samples<'a> {
    fn new(
        corpus: &'a dyn Units,
        vocab: &Vocabulary,
        max_tokens: usize,
        train: &[usize],
        validation: &[usize],
    ) -> Samples<'a> {
        let encoded = (0..corpus.count())
            .map(|p| {
                corpus
                    .tokens(p)
                    .iter()
                    .map(|t| vocab.encode(t, max_tokens))
                    .collect()
            })
            .collect();
        Samples {
            corpus,
            encoded,
            train: samples(corpus, train),
            validation: samples(corpus, validation),
        }
    }

    fn sequences(&self, picked: &[(usize, usize)]) -> Vec<&[usize]> {
        picked
            .iter()
            .map(|&(p, d)| self.encoded[p][d].as_slice())
            .collect()
    }
}

impl<'a> Phase<'a> {
    /// A phase of `options`' run in `dir`, with the optimiser settings of its configuration.
    fn of(
        name: &'static str,
        dir: &'a Path,
        options: &RunOptions,
        (batch, max_epochs, patience): (usize, usize, usize),
        by_loss: bool,
        rule: EarlyStopping,
    ) -> Phase<'a> {
        let config = &options.config;
        Phase {
            name,
            dir,
            seed: options.seed,
            batch,
            max_epochs,
            patience,
            learning_rate: config.learning_rate,
            weight_decay: config.weight_decay,
            epsilon: config.epsilon,
            resume: options.resume,
            quiet: options.quiet,
            by_loss,
            rule,
        }
    }
}

/// The captioner's phase: teacher-forced loss with the attention penalty, early-stopped on
/// validation BLEU (or loss, as configured).
fn train_captioner(
    data: &Samples,
    vocab: &Vocabulary,
    validation: &[usize],
    dir: &Path,
    options: &RunOptions,
    autodiff: &Device,
    device: &Device,
) -> Result<(Captioner, Vec<Epoch>)> {
    let config = &options.config;
    let corpus = data.corpus;
    let captioner_config = config.captioner(corpus.dims(), vocab.len());
    autodiff.seed(options.seed);
    let captioner = match &options.init {
        Some(init) => load_module(
            captioner_config.init(autodiff),
            &init.dir.join("captioner.bpk"),
        )?,
        None => captioner_config.init(autodiff),
    };
    Phase::of(
        "captioner",
        dir,
        options,
        (config.batch, config.max_epochs, config.patience),
        config.early_stopping == EarlyStopping::Loss,
        config.early_stopping,
    )
    .run(
        captioner,
        data.train.len(),
        |model: &Captioner, batch: &[usize]| {
            let picked: Vec<(usize, usize)> = batch.iter().map(|&i| data.train[i]).collect();
            let positions: Vec<usize> = picked.iter().map(|s| s.0).collect();
            model.loss(
                corpus.features(&positions, autodiff),
                &pad(&data.sequences(&picked)),
                config.attention_weight,
            )
        },
        |model: &Captioner| {
            let bleu = validation_bleu(model, corpus, vocab, validation, device);
            let loss = mean_loss(&data.validation, |chunk| {
                let positions: Vec<usize> = chunk.iter().map(|s| s.0).collect();
                model.loss(
                    corpus.features(&positions, device),
                    &pad(&data.sequences(chunk)),
                    config.attention_weight,
                )
            });
            (bleu, loss)
        },
        || captioner_config.init(device),
        autodiff,
    )
}

/// The language model's phase: next-token loss, early-stopped on validation loss (or the
/// reference's rule).
fn train_language_model(
    data: &Samples,
    vocab: &Vocabulary,
    dir: &Path,
    options: &RunOptions,
    autodiff: &Device,
    device: &Device,
) -> Result<(LanguageModel, Vec<Epoch>)> {
    let config = &options.config;
    let lm_config = config.language_model(vocab.len());
    autodiff.seed(options.seed.wrapping_add(1));
    let lm = match &options.init {
        Some(init) => load_module(lm_config.init(autodiff), &init.dir.join("lm.bpk"))?,
        None => lm_config.init(autodiff),
    };
    Phase::of(
        "lm",
        dir,
        options,
        (config.lm_batch, config.lm_max_epochs, config.lm_patience),
        true,
        match config.early_stopping {
            EarlyStopping::Reference => EarlyStopping::Reference,
            _ => EarlyStopping::Loss,
        },
    )
    .run(
        lm,
        data.train.len(),
        |model: &LanguageModel, batch: &[usize]| {
            let picked: Vec<(usize, usize)> = batch.iter().map(|&i| data.train[i]).collect();
            model.loss(&pad(&data.sequences(&picked)), autodiff)
        },
        |model: &LanguageModel| {
            let loss = mean_loss(&data.validation, |chunk| {
                model.loss(&pad(&data.sequences(chunk)), device)
            });
            (-loss, loss)
        },
        || lm_config.init(device),
        autodiff,
    )
}

/// Trains the captioner and the language model on `train` (corpus positions), early-stopping on
/// `validation`, into `dir`; returns the best weights (on `device`, without autodiff).
pub fn train(
    corpus: &dyn Units,
    train: &[usize],
    validation: &[usize],
    dir: &Path,
    options: &RunOptions,
    device: &Device,
) -> Result<Trained> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = &options.config;
    let vocab = vocabulary(corpus, train, options)?;
    let info = RunInfo {
        config: config.clone(),
        encoder: corpus.encoder().to_owned(),
        feature_dim: corpus.dims(),
        seed: options.seed,
        backend: options.backend.clone(),
        init_from: options.init.as_ref().map(|i| i.name.clone()),
    };
    start_run(dir, &info, &vocab, options.resume)?;

    let autodiff = device.clone().autodiff();
    let data = Samples::new(corpus, &vocab, config.max_tokens, train, validation);
    let (captioner, captioner_history) =
        train_captioner(&data, &vocab, validation, dir, options, &autodiff, device)?;
    let (lm, lm_history) = train_language_model(&data, &vocab, dir, options, &autodiff, device)?;
    let history = History {
        captioner: captioner_history,
        language_model: lm_history,
        captioner_by_loss: config.early_stopping == EarlyStopping::Loss,
    };
    milan_shared::atomic::write(
        &dir.join("history.json"),
        &serde_json::to_vec_pretty(&history)?,
    )?;
    Ok(Trained {
        captioner,
        lm,
        vocab,
        info,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epochs until the rule stops, for validation scores `scores` (loss constant).
    fn run(rule: EarlyStopping, patience: usize, scores: &[f64]) -> (usize, f64) {
        let mut s = Stopper::new(rule, patience);
        for (i, &v) in scores.iter().enumerate() {
            s.observe((v, 1.0));
            if s.stop() {
                return (i + 1, s.best.0);
            }
        }
        (scores.len(), s.best.0)
    }

    #[test]
    fn the_reference_counts_patience_past_the_limit_and_ties_do_not_improve() {
        // Scores: best at epoch 2, then ties and worse.
        let scores = [1.0, 2.0, 2.0, 1.5, 2.0, 1.0, 3.0];
        // Reference, patience 2: bad epochs 3, 4, 5 -> stops after epoch 5 (3 > 2).
        assert_eq!(run(EarlyStopping::Reference, 2, &scores), (5, 2.0));
        // Best, patience 2: ties to the lower loss (equal here, so not better) -> stops after
        // epoch 4 (2 >= 2).
        assert_eq!(run(EarlyStopping::Best, 2, &scores), (4, 2.0));
        // A tie with a lower loss improves under best, never under the reference.
        let mut best = Stopper::new(EarlyStopping::Best, 2);
        best.observe((2.0, 1.0));
        assert!(best.observe((2.0, 0.5)));
        let mut reference = Stopper::new(EarlyStopping::Reference, 2);
        reference.observe((2.0, 1.0));
        assert!(!reference.observe((2.0, 0.5)));
        assert!(reference.keeps_last() && !best.keeps_last());
        // Patience 0: the reference stops at the first bad epoch, best at once after it too.
        assert_eq!(run(EarlyStopping::Reference, 0, &[1.0, 0.5, 2.0]), (2, 1.0));
    }

    #[test]
    fn configurations_written_with_bleu_still_read() {
        let old: EarlyStopping = serde_json::from_str("\"bleu\"").unwrap();
        assert_eq!(old, EarlyStopping::Best);
        let r: EarlyStopping = serde_json::from_str("\"reference\"").unwrap();
        assert_eq!(r, EarlyStopping::Reference);
    }
}
