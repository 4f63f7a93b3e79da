//! `trainer follow`: trains MILAN on an annotator project's descriptions as they arrive.
//!
//! The loop: read the descriptions feed from the persisted cursor (re-reading a short overlap,
//! harmless because applying an event is idempotent: see [`state`]); when `every` more neurons
//! have three approved descriptions than the last round trained on, start a round: retrain from
//! scratch on every annotated neuron (the vocabulary grows with the data, so weights are not
//! carried over), score every system on the held-out neurons and append to the history.
//!
//! The exemplar arrays come once, from the project's MILANNOTATIONS export, into
//! `RUNDIR/exemplars/`; their features are computed once into the feature cache. A neuron the
//! export did not have (sets imported later) fetches the export again.
//!
//! Held-out neurons are chosen per neuron by a hash of (seed, neuron), so a neuron that is held
//! out in one round is held out in every later round and the curve compares like with like. With
//! `--split` naming an experiment (`alexnet->resnet152`), the test keys' neurons are the test
//! neurons and the training keys' train, as `trainer fit` does.
//!
//! RUNDIR: `follow.lock` (held while a follower runs: two on one RUNDIR would overwrite each
//! other's state), `follow.json` (cursor, descriptions, round in progress), `exemplars/`,
//! `rounds/round-NNN/` (a training run as `trainer fit` writes one, resumable, with its
//! `predictions.csv` and `metrics.json`), `history.json` and `history.png`.
//! Killed at any point, a restart resumes: the cursor and descriptions from `follow.json`, the
//! round in progress from its plan there and its training from its last epoch checkpoint.

pub mod state;

use milan_shared::atomic;
use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use milan_shared::NeuronId;
use milan_shared::split::{Evaluation, Experiment, Split};
use milan_shared::tokenize::tokenize;
use milan_shared::wire::ModelDescription;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::corpus::{Corpus, FeatureSource};
use crate::evaluation::scoring::Scores;
use crate::evaluation::scoring::{BertScoreChoice, Scorer};
use crate::experiments::fit::evaluate;
use crate::util::plot::SystemScores;
use milan_client::Project;
use milan_model::train::{RunOptions, train};
use state::{FollowState, RoundPlan};

/// Feed events re-read before the cursor on every poll. On PostgreSQL, event ids come from a
/// sequence and concurrent transactions may commit out of id order; re-reading a window behind the
/// cursor picks up one that committed late.
pub const OVERLAP: i64 = 200;

/// The share of neurons held out for testing and, of the rest, for validation.
const HELD_OUT: u64 = 10;

/// What the follower posts for the sets not yet complete after each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Describe {
    /// Nothing.
    None,
    /// The captioner's greedy descriptions (fast: tens of neurons a second on a CPU).
    Greedy,
    /// MILAN's descriptions: beam search with PMI reranking (about a neuron a second on a CPU
    /// at beam 50).
    Pmi,
}

/// The priority posted with each description, which accept-next follows when the project's
/// active ordering is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Priority {
    /// None posted.
    None,
    /// The captioner's uncertainty: the mean negative log-likelihood per token of its own greedy
    /// description (high: the captioner is unsure what the neuron shows).
    Uncertainty,
    /// A seeded random number per (round, set): the baseline of the active-ordering simulation.
    Random,
}

#[derive(Debug, Clone)]
pub struct FollowOptions {
    pub annotator: String,
    pub project: String,
    pub token: String,
    pub out: PathBuf,
    /// Newly annotated neurons that start a round.
    pub every: usize,
    /// An experiment name of any split (`alexnet->resnet152`), or None: held-out neurons of
    /// every key.
    pub split: Option<String>,
    pub source: FeatureSource,
    pub run: RunOptions,
    pub poll: Duration,
    /// Stop after this many rounds in all (None: never).
    pub max_rounds: Option<usize>,
    /// Stop when the feed has nothing new and no round is due.
    pub until_idle: bool,
    /// Give up when the annotator has not answered for this long (None: wait forever).
    pub give_up_after: Option<Duration>,
    /// The BERTScore model its learning curve is scored with, as `fit` chooses it.
    pub bertscore: BertScoreChoice,
    pub describe: Describe,
    pub priority: Priority,
}

/// One finished round in `history.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: usize,
    pub annotated_neurons: usize,
    pub train_neurons: usize,
    pub validation_neurons: usize,
    pub test_neurons: usize,
    pub results: BTreeMap<String, Scores>,
    /// Descriptions posted to the annotator for the sets not yet complete.
    #[serde(default)]
    pub posted: usize,
    pub seconds: f64,
    /// The BERTScore setting the round was scored with ([`Scorer::setting`]; empty in histories
    /// written before it was recorded).
    #[serde(default)]
    pub bertscore: String,
}

/// Reads `RUNDIR/history.json` (empty when absent).
pub fn read_history(out: &Path) -> Result<Vec<RoundRecord>> {
    let path = out.join("history.json");
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("{}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// What the held-out choice needs of the split.
enum Holdout {
    /// 10% of the neurons of every key.
    Neurons,
    Experiment(Experiment),
}

fn holdout(split: Option<&str>) -> Result<Holdout> {
    let Some(name) = split else {
        return Ok(Holdout::Neurons);
    };
    if name == Split::WithinNetwork.name() {
        return Ok(Holdout::Neurons);
    }
    for s in Split::ALL {
        if let Ok(e) = s.experiment(name) {
            return Ok(Holdout::Experiment(e));
        }
    }
    bail!(
        "--split {name:?}: neither within-network nor an experiment of a split (e.g. alexnet->resnet152; `trainer fit --help` lists the splits)"
    )
}

/// A stable pseudo-random number per (seed, purpose, neuron).
fn neuron_hash(seed: u64, purpose: &str, n: &NeuronId) -> u64 {
    let digest = Sha256::digest(format!("{seed}:{purpose}:{}:{}:{}", n.key, n.layer, n.unit));
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Whether the within-network hold-out of `seed` tests on this neuron (whatever else is annotated).
pub fn is_test_neuron(seed: u64, n: &NeuronId) -> bool {
    neuron_hash(seed, "test", n).is_multiple_of(HELD_OUT)
}

/// A seeded number in [0, 1) per (seed, purpose, neuron).
pub fn unit_interval(seed: u64, purpose: &str, n: &NeuronId) -> f64 {
    (neuron_hash(seed, purpose, n) >> 11) as f64 / (1u64 << 53) as f64
}

/// Splits `ids` into (train, validation, test) with per-neuron membership; when a side would be
/// empty, the neuron with the smallest hash is moved to it, so every round can be scored.
fn partition(
    ids: &[NeuronId],
    holdout: &Holdout,
    seed: u64,
) -> (Vec<NeuronId>, Vec<NeuronId>, Vec<NeuronId>) {
    let held = |purpose: &str, n: &NeuronId| match purpose {
        "test" => is_test_neuron(seed, n),
        _ => neuron_hash(seed, purpose, n).is_multiple_of(HELD_OUT),
    };
    let (mut rest, mut test): (Vec<NeuronId>, Vec<NeuronId>) = match holdout {
        Holdout::Neurons => ids.iter().cloned().partition(|n| !held("test", n)),
        Holdout::Experiment(e) => {
            let train = ids.iter().filter(|n| e.train.contains(&n.key)).cloned();
            let test = ids.iter().filter(|n| e.test.contains(&n.key)).cloned();
            match e.evaluation {
                Evaluation::HeldOutNetworks => (train.collect(), test.collect()),
                Evaluation::HeldOutNeurons => train.partition(|n| !held("test", n)),
            }
        }
    };
    let ensure = |from: &mut Vec<NeuronId>, to: &mut Vec<NeuronId>, purpose: &str| {
        if to.is_empty() && from.len() >= 2 {
            let i = (0..from.len())
                .min_by_key(|&i| neuron_hash(seed, purpose, &from[i]))
                .expect("non-empty");
            to.push(from.remove(i));
        }
    };
    if matches!(holdout, Holdout::Neurons) {
        ensure(&mut rest, &mut test, "test");
    }
    let (mut train, mut validation): (Vec<NeuronId>, Vec<NeuronId>) =
        rest.into_iter().partition(|n| !held("validation", n));
    ensure(&mut train, &mut validation, "validation");
    (train, validation, test)
}

struct Follower {
    options: FollowOptions,
    annotator: Project,
    state: FollowState,
    state_path: PathBuf,
    exemplars: PathBuf,
    corpus: Option<Corpus>,
    scorer: Scorer,
    holdout: Holdout,
}

/// Follows the project until `max_rounds` or `until_idle` says to stop (never, by default).
pub fn follow(options: FollowOptions, device: &Device) -> Result<Vec<RoundRecord>> {
    if options.every == 0 {
        bail!("--every must be at least 1");
    }
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let _lock = lock_rundir(&options.out)?;
    let holdout = holdout(options.split.as_deref())?;
    let state_path = options.out.join("follow.json");
    let state = FollowState::load_or_new(&state_path, &options.annotator, &options.project)?;
    let scorer = Scorer::load(&options.bertscore, device)?;
    // One learning curve, one scorer: rounds scored another way do not go on the same curve.
    if let Some(other) = read_history(&options.out)?
        .iter()
        .find(|r| !r.bertscore.is_empty() && r.bertscore != scorer.setting)
    {
        bail!(
            "{}: round {} was scored with BERTScore {}; this run scores with {}: give the same \
             --bertscore, --bertscore-model and --num-layers as before, or another --out",
            options.out.join("history.json").display(),
            other.round,
            other.bertscore,
            scorer.setting
        );
    }
    let mut annotator = Project::new(&options.annotator, &options.project, &options.token);
    annotator.retry.give_up_after = options.give_up_after;
    let mut f = Follower {
        exemplars: options.out.join("exemplars"),
        options,
        annotator,
        state,
        state_path,
        corpus: None,
        scorer,
        holdout,
    };
    f.run(device)?;
    read_history(&f.options.out)
}

/// Takes `RUNDIR/follow.lock` for as long as the returned file lives, or says which process
/// holds it. The lock is the kernel's (flock), so a follower killed with -9 leaves none behind.
pub fn lock_rundir(dir: &Path) -> Result<File> {
    let path = dir.join("follow.lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "{} is in use by another `trainer follow` (process {}, which holds {}): \
                 stop it or choose another --out",
                dir.display(),
                holder.trim(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

impl Follower {
    fn run(&mut self, device: &Device) -> Result<()> {
        loop {
            if let Some(plan) = self.state.round.clone() {
                self.round(&plan, device)?;
                continue;
            }
            if self
                .options
                .max_rounds
                .is_some_and(|m| self.state.rounds_done >= m)
            {
                return Ok(());
            }
            let changed = self.poll()?;
            match self.next_round()? {
                Ok(plan) => {
                    self.state.round = Some(plan);
                    self.state.save(&self.state_path)?;
                }
                Err(waiting) if self.options.until_idle && !changed => {
                    eprintln!("idle: {waiting}");
                    return Ok(());
                }
                Err(_) if !changed => std::thread::sleep(self.options.poll),
                Err(_) => {}
            }
        }
    }

    /// The round that is due, or why none is: too few newly annotated neurons, or too few to
    /// split into train, validation and test (a round that could not be scored would fail again
    /// after every restart).
    fn next_round(&self) -> Result<std::result::Result<RoundPlan, String>> {
        let annotated = self.state.annotated();
        let due = self.state.trained_on + self.options.every;
        if annotated.len() < due {
            return Ok(Err(format!(
                "{} annotated neurons ({} more start the next round), {} descriptions pending review",
                annotated.len(),
                due - annotated.len(),
                self.state.pending()
            )));
        }
        let neurons: Vec<NeuronId> = annotated
            .keys()
            .map(|(model, layer, unit)| {
                Ok(NeuronId::new(
                    model
                        .parse()
                        .map_err(|e| anyhow::anyhow!("feed: model {model:?}: {e}"))?,
                    layer.clone(),
                    *unit,
                ))
            })
            .collect::<Result<_>>()?;
        let (train, validation, test) = partition(&neurons, &self.holdout, self.options.run.seed);
        if train.is_empty() || validation.is_empty() || test.is_empty() {
            return Ok(Err(format!(
                "{} annotated neurons give {} to train, {} to validate and {} to test; waiting for more",
                neurons.len(),
                train.len(),
                validation.len(),
                test.len()
            )));
        }
        Ok(Ok(RoundPlan {
            index: self.state.rounds_done + 1,
            neurons,
        }))
    }

    /// Reads the feed to its end; true when anything changed.
    fn poll(&mut self) -> Result<bool> {
        let mut after = (self.state.cursor - OVERLAP).max(0);
        let mut changed = false;
        loop {
            let (events, next) = self.annotator.page(after)?;
            for e in &events {
                changed |= self.state.apply(e);
            }
            after = next;
            if events.len() < milan_client::PAGE {
                break;
            }
        }
        let moved = after > self.state.cursor;
        self.state.cursor = self.state.cursor.max(after);
        if changed || moved {
            self.state.save(&self.state_path)?;
        }
        Ok(changed)
    }

    /// The exemplars' corpus (every unit of the project), fetching the export when a neuron of
    /// `needed` is not in it.
    fn corpus(&mut self, needed: &[NeuronId], device: &Device) -> Result<&Corpus> {
        let missing = |c: &Corpus| {
            let have: HashSet<&NeuronId> = c.neurons.iter().map(|n| &n.id).collect();
            needed.iter().any(|n| !have.contains(n))
        };
        if self.corpus.as_ref().is_none_or(missing) {
            // On a restart the exemplars on disk may already have every neuron needed.
            let on_disk = match (&self.corpus, self.exemplars.exists()) {
                (None, true) => {
                    Corpus::load(&self.exemplars, &self.options.source, true, device).ok()
                }
                _ => None,
            };
            let corpus = match on_disk {
                Some(c) if !missing(&c) => c,
                _ => {
                    eprintln!("fetching the exemplars of project {}", self.options.project);
                    self.annotator.export_into(&self.exemplars)?;
                    Corpus::load(&self.exemplars, &self.options.source, true, device)
                        .with_context(|| format!("reading {}", self.exemplars.display()))?
                }
            };
            if missing(&corpus) {
                bail!(
                    "the annotator's export of {} lacks neurons its feed describes",
                    self.options.project
                );
            }
            self.corpus = Some(corpus);
        }
        Ok(self.corpus.as_ref().expect("loaded above"))
    }

    /// Posts descriptions (and priorities) of every neuron not in `annotated` to the annotator;
    /// how many.
    fn post(
        &self,
        corpus: &Corpus,
        trained: &milan_model::train::Trained,
        annotated: &[NeuronId],
        round: usize,
        device: &Device,
    ) -> Result<usize> {
        let (describe, priority) = (self.options.describe, self.options.priority);
        if describe == Describe::None && priority == Priority::None {
            return Ok(0);
        }
        let done: HashSet<&NeuronId> = annotated.iter().collect();
        let open: Vec<usize> = (0..corpus.neurons.len())
            .filter(|&p| !done.contains(&corpus.neurons[p].id))
            .collect();
        if open.is_empty() {
            return Ok(0);
        }
        let bar = indicatif::ProgressBar::new(open.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>10} {bar:30} {pos}/{len} sets [{elapsed}<{eta}]",
            )
            .expect("valid template"),
        );
        bar.set_prefix("describe");
        if self.options.run.quiet {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let config = &trained.info.config.decode;
        let mut items = Vec::with_capacity(open.len());
        for chunk in open.chunks(64) {
            let features = corpus.features(chunk, device);
            let greedy = milan_model::decoding::greedy(&trained.captioner, features.clone());
            let texts: Vec<Vec<usize>> = match describe {
                Describe::Pmi => milan_model::decoding::milan_pmi(
                    &trained.captioner,
                    &trained.lm,
                    features.clone(),
                    config,
                ),
                _ => greedy.clone(),
            };
            let uncertainty = match priority {
                Priority::Uncertainty => {
                    let lp = milan_model::decoding::captioner_log_probs(
                        &trained.captioner,
                        features,
                        &greedy,
                    );
                    lp.iter()
                        .zip(&greedy)
                        .map(|(l, g)| Some(f64::from(-l) / g.len().max(1) as f64))
                        .collect()
                }
                _ => vec![None; chunk.len()],
            };
            for ((&p, text), u) in chunk.iter().zip(&texts).zip(uncertainty) {
                let id = &corpus.neurons[p].id;
                let priority = match priority {
                    Priority::None => None,
                    Priority::Uncertainty => u,
                    Priority::Random => Some(unit_interval(
                        self.options.run.seed,
                        &format!("priority-{round}"),
                        id,
                    )),
                };
                items.push(ModelDescription {
                    model: id.key.to_string(),
                    layer: id.layer.clone(),
                    unit: i32::try_from(id.unit).context("unit number out of range")?,
                    description: (describe != Describe::None).then(|| trained.vocab.decode(text)),
                    priority,
                });
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let system = match describe {
            Describe::Pmi => "milan-pmi",
            Describe::Greedy => "captioner-greedy",
            Describe::None => "priority-only",
        };
        self.annotator
            .post_model_descriptions(round, system, &items)?;
        Ok(items.len())
    }

    fn round(&mut self, plan: &RoundPlan, device: &Device) -> Result<()> {
        // The round writes its descriptions into the cached corpus rather than into a copy of
        // it: the features are most of its size (gigabytes for all of MILANNOTATIONS).
        self.corpus(&plan.neurons, device)?;
        let mut corpus = self.corpus.take().expect("loaded above");
        let result = self.round_on(&mut corpus, plan, device);
        self.corpus = Some(corpus);
        result
    }

    fn round_on(&mut self, corpus: &mut Corpus, plan: &RoundPlan, device: &Device) -> Result<()> {
        let started = Instant::now();
        let annotated = self.state.annotated();
        for neuron in &mut corpus.neurons {
            neuron.descriptions.clear();
            neuron.tokens.clear();
        }
        let index = corpus.index();
        for id in &plan.neurons {
            let key = (id.key.to_string(), id.layer.clone(), id.unit);
            let descriptions = annotated
                .get(&key)
                .with_context(|| format!("round {}: {id:?} has no descriptions", plan.index))?;
            let neuron = &mut corpus.neurons[index[id]];
            neuron.tokens = descriptions.iter().map(|d| tokenize(d)).collect();
            neuron.descriptions = descriptions.clone();
        }
        let (train_ids, val_ids, test_ids) =
            partition(&plan.neurons, &self.holdout, self.options.run.seed);
        if train_ids.is_empty() || val_ids.is_empty() || test_ids.is_empty() {
            bail!(
                "round {}: {} annotated neurons give {} to train, {} to validate and {} to test; \
                 raise --every so that each round has all three",
                plan.index,
                plan.neurons.len(),
                train_ids.len(),
                val_ids.len(),
                test_ids.len()
            );
        }
        let train_pos = corpus.positions(&train_ids)?;
        let val_pos = corpus.positions(&val_ids)?;
        let test_pos = corpus.positions(&test_ids)?;
        let dir = self
            .options
            .out
            .join("rounds")
            .join(format!("round-{:03}", plan.index));
        eprintln!(
            "round {}: {} annotated neurons ({} train, {} validation, {} test)",
            plan.index,
            plan.neurons.len(),
            train_pos.len(),
            val_pos.len(),
            test_pos.len()
        );
        let run = RunOptions {
            resume: true,
            ..self.options.run.clone()
        };
        let trained = train(corpus, &train_pos, &val_pos, &dir, &run, device)?;
        crate::util::plot::learning_curve(&dir.join("learning-curve.png"), &trained.history)?;
        let known: Vec<usize> = train_pos.iter().chain(&val_pos).copied().collect();
        let results = evaluate(
            corpus,
            &trained,
            &known,
            &test_pos,
            &self.scorer,
            &dir.join("predictions.csv"),
            device,
        )?;
        let posted = self.post(corpus, &trained, &plan.neurons, plan.index, device)?;
        let record = RoundRecord {
            posted,
            round: plan.index,
            annotated_neurons: plan.neurons.len(),
            train_neurons: train_pos.len(),
            validation_neurons: val_pos.len(),
            test_neurons: test_pos.len(),
            results,
            seconds: started.elapsed().as_secs_f64(),
            bertscore: self.scorer.setting.clone(),
        };
        atomic::write(
            &dir.join("metrics.json"),
            &serde_json::to_vec_pretty(&record)?,
        )?;
        let mut history = read_history(&self.options.out)?;
        history.retain(|r| r.round != plan.index);
        history.push(record.clone());
        atomic::write(
            &self.options.out.join("history.json"),
            &serde_json::to_vec_pretty(&history)?,
        )?;
        let curve: Vec<(f64, SystemScores)> = history
            .iter()
            .map(|r| {
                (
                    r.annotated_neurons as f64,
                    r.results
                        .iter()
                        .map(|(s, v)| (s.clone(), (v.bleu, v.bertscore_f)))
                        .collect(),
                )
            })
            .collect();
        crate::util::plot::rounds_curve(&self.options.out.join("history.png"), &curve)?;
        eprintln!(
            "round {} done in {:.0} s: {}",
            plan.index,
            record.seconds,
            record
                .results
                .iter()
                .map(|(s, v)| format!("{s} BLEU {:.1} BERTScore {:.3}", v.bleu, v.bertscore_f))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        self.state.round = None;
        self.state.rounds_done = plan.index;
        self.state.trained_on = plan.neurons.len();
        self.state.save(&self.state_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<NeuronId> {
        (0..n)
            .map(|u| NeuronId::new("alexnet/imagenet".parse().unwrap(), "conv1", u))
            .collect()
    }

    #[test]
    fn a_rundir_takes_one_follower_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_rundir(dir.path()).unwrap();
        let err = lock_rundir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another `trainer follow`"), "{err}");
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        drop(held);
        lock_rundir(dir.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn held_out_neurons_stay_held_out_as_data_grows() {
        let (_, _, small) = partition(&ids(200), &Holdout::Neurons, 0);
        let (train, validation, large) = partition(&ids(400), &Holdout::Neurons, 0);
        assert!(small.iter().all(|n| large.contains(n)));
        assert!((20..=60).contains(&large.len()), "{}", large.len());
        assert!(!validation.is_empty() && !train.is_empty());
        let all: HashSet<_> = train.iter().chain(&validation).chain(&large).collect();
        assert_eq!(all.len(), 400, "the three sides are disjoint and cover all");
        // Tiny rounds still get a test and a validation neuron.
        let (train, validation, test) = partition(&ids(3), &Holdout::Neurons, 0);
        assert_eq!((train.len(), validation.len(), test.len()), (1, 1, 1));
    }

    #[test]
    fn an_experiment_tests_on_its_held_out_network() {
        let mut neurons = ids(30);
        neurons.extend(
            (0..10).map(|u| NeuronId::new("resnet152/imagenet".parse().unwrap(), "layer1", u)),
        );
        let h = holdout(Some("alexnet->resnet152")).unwrap();
        let (train, validation, test) = partition(&neurons, &h, 0);
        assert_eq!(test.len(), 10);
        assert!(
            test.iter()
                .all(|n| n.key.to_string() == "resnet152/imagenet")
        );
        assert_eq!(train.len() + validation.len(), 30);
        assert!(holdout(Some("nowhere->nothing")).is_err());
    }
}
