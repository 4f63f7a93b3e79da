//! `trainer simulate-active`: active ordering against random ordering, on the synthetic corpus,
//! with a real annotator and simulated workers.
//!
//! For each condition a fresh `annotator serve` gets the same synthetic corpus as a project with
//! active ordering on. Three simulated workers describe the sets accept-next hands them with what
//! the synthetic annotators wrote for those units, and the requester approves everything. Before
//! the first round both conditions post the same priorities: the follower's held-out test neurons
//! first (so both are scored on the same neurons, never chosen by the ordering), then a seeded
//! random order. After each round `trainer follow` posts its priorities: the captioner's
//! uncertainty (active) or a fresh random order (random). The workers then complete `--batch`
//! more sets, and so on.

use milan_shared::atomic;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use milan_client::Project;
use milan_client::{Api, Serve};
use milan_model::train::{MilanConfig, RunOptions};
use milan_shared::milannotations::{Dataset, discover};
use milan_shared::wire::{self, ModelDescription};
use milan_shared::{ModelKey, NeuronId};
use milan_trainer::evaluation::bootstrap::MeanStd;
use milan_trainer::experiments::summary::SystemSummary;
use milan_trainer::follow::{
    Describe, FollowOptions, Priority, RoundRecord, follow, is_test_neuron, unit_interval,
};
use milan_trainer::util::plot::SystemScores;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cli::args::{FeatureArgs, TrainingArgs};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Output folder: corpus/, random/ and active/ (annotator data and follow run folders),
    /// simulation.json, simulation.md and simulation.png (with several seeds, those per seed in
    /// seed-N/ and the mean ± sample std over seeds at the top). A seed whose simulation.json
    /// is there with the same settings is reused, so an interrupted run or one more seed costs
    /// only the seeds not yet simulated.
    #[arg(long)]
    out: PathBuf,
    /// The annotator binary (default: `annotator` beside this `trainer`).
    #[arg(long)]
    annotator_bin: Option<PathBuf>,
    /// Model keys of the synthetic corpus.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "alexnet/imagenet,resnet152/imagenet"
    )]
    keys: Vec<ModelKey>,
    #[arg(long, default_value_t = 20)]
    units_per_layer: usize,
    /// Sets completed between two rounds.
    #[arg(long, default_value_t = 20)]
    batch: usize,
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// One seed, or several (`0,1,2,3,4`): each seed's corpus, hold-out, initialisation and
    /// random order differ; several write `seed-N/` each and a summary over them at the top.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seed: Vec<u64>,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    features: FeatureArgs,
}

/// What the synthetic annotators wrote, by neuron.
type Truth = HashMap<(String, String, u32), [String; 3]>;

fn output_of(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The simulated workers: sessions minted with the requester's token, as an integration signs
/// its crowd in.
struct Crowd {
    api: Api,
    requester: String,
    workers: Vec<(String, Option<String>)>,
}

impl Crowd {
    fn post(&self, path: &str, token: &str, body: &impl Serialize) -> Result<(u16, Value)> {
        self.api
            .post(path, token, Some(body), None)
            .map_err(anyhow::Error::msg)
    }

    /// Each worker in turn takes the next set and describes it as its synthetic annotator did,
    /// until `sets` sets have been handed out three times; the requester approves it all.
    fn complete(&mut self, sets: usize, truth: &Truth) -> Result<usize> {
        let mut done = 0;
        for _ in 0..sets {
            for i in 0..self.workers.len() {
                let token = match &self.workers[i].1 {
                    Some(t) => t.clone(),
                    None => {
                        let t = self
                            .api
                            .sign_in(&self.requester, &self.workers[i].0)
                            .map_err(anyhow::Error::msg)?;
                        self.workers[i].1 = Some(t.clone());
                        t
                    }
                };
                let (status, a) =
                    self.post("/api/v1/projects/p/assignments", &token, &json!({}))?;
                if status == 204 {
                    return Ok(done);
                }
                ensure!(status == 201, "accept: {status} {a}");
                let a: wire::Accepted =
                    serde_json::from_value(a.clone()).with_context(|| format!("accept: {a}"))?;
                let id = a.assignment_id;
                let key = (
                    a.set.model,
                    a.set.layer,
                    u32::try_from(a.set.unit).context("unit")?,
                );
                let text = &truth[&key][i % 3];
                let path = format!("/api/v1/assignments/{id}/submit");
                // Too short, or the same words as this worker's last set: as a person would,
                // say a little more.
                let mut answer = (0, Value::Null);
                for suffix in ["", " regions", " in these images"] {
                    answer = self.post(
                        &path,
                        &token,
                        &wire::SubmitRequest {
                            description: format!("{text}{suffix}"),
                        },
                    )?;
                    if answer.0 != 422 {
                        break;
                    }
                }
                let (status, body) = answer;
                ensure!(status == 200, "submit {text:?}: {status} {body}");
                let (status, body) = self.post(
                    &format!("/api/v1/assignments/{id}/approve"),
                    &self.requester,
                    &json!({}),
                )?;
                ensure!(status == 200, "approve: {status} {body}");
            }
            done += 1;
        }
        Ok(done)
    }
}

fn corpus_truth(corpus: &Path) -> Result<Truth> {
    let mut truth = Truth::new();
    for folder in discover(corpus)? {
        let dataset = Dataset::open(&folder)?;
        for unit in dataset.annotated() {
            truth.insert(
                (dataset.key().to_string(), unit.layer.clone(), unit.unit),
                unit.descriptions.clone(),
            );
        }
    }
    Ok(truth)
}

pub fn run(args: &SimulateArgs) -> Result<()> {
    let exe = match &args.annotator_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("annotator"),
    };
    ensure!(
        exe.is_file(),
        "{} not found: build it (cargo build -p milan-annotator) or pass --annotator-bin",
        exe.display()
    );
    let device = milan_trainer::util::backend::device(&args.features.backend)?;
    let config = args.training.config()?;
    ensure!(!args.seed.is_empty(), "--seed names no seed");
    std::fs::create_dir_all(&args.out)?;
    let settings = settings(args, &config)?;
    let several = args.seed.len() > 1;
    let mut runs = Vec::new();
    for &seed in &args.seed {
        let out = if several {
            args.out.join(format!("seed-{seed}"))
        } else {
            args.out.clone()
        };
        if several {
            eprintln!("seed {seed}: {}", out.display());
        }
        let conditions = simulate(args, seed, &out, &exe, &device, &config, &settings)?;
        let md = write_outcome(&out, &conditions)?;
        if !several {
            print!("{md}");
        }
        runs.push(conditions);
    }
    if several {
        let summary = summarize(&args.seed, &runs);
        let md = write_summary(&args.out, &summary)?;
        print!("{md}");
    }
    eprintln!(
        "simulation.json, simulation.md and simulation.png in {}",
        args.out.display()
    );
    Ok(())
}

/// Both conditions' rounds, from one seed, and the settings they ran with.
#[derive(Debug, Serialize, Deserialize)]
struct Conditions {
    #[serde(default)]
    settings: Value,
    random: Vec<RoundRecord>,
    active: Vec<RoundRecord>,
}

/// What a seed's outcome depends on besides the seed: an outcome with other settings is rerun.
fn settings(args: &SimulateArgs, config: &MilanConfig) -> Result<Value> {
    // Through text, so that the config's f32 fields read 0.2 as `trainer config` prints them
    // (`json!` would widen them to 0.20000000298023224).
    let config: Value = serde_json::from_str(&serde_json::to_string(config)?)?;
    Ok(json!({
        "keys": args.keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "units_per_layer": args.units_per_layer,
        "batch": args.batch,
        "rounds": args.rounds,
        "config": config,
        "encoder": args.features.source().encoder,
        "backend": args.features.backend,
        // The scorer is part of the outcome: another --num-layers is another learning curve.
        "bertscore": format!("{:?}", args.training.scorer.choice()?),
    }))
}

/// `out/simulation.json` when it holds a finished run with these settings.
fn finished(out: &Path, settings: &Value) -> Option<Conditions> {
    let text = std::fs::read_to_string(out.join("simulation.json")).ok()?;
    let done: Conditions = serde_json::from_str(&text).ok()?;
    (done.settings == *settings).then_some(done)
}

fn simulate(
    args: &SimulateArgs,
    seed: u64,
    out: &Path,
    exe: &Path,
    device: &Device,
    config: &MilanConfig,
    settings: &Value,
) -> Result<Conditions> {
    if let Some(done) = finished(out, settings) {
        eprintln!(
            "seed {seed}: reusing {} (same settings; delete it to rerun)",
            out.join("simulation.json").display()
        );
        return Ok(done);
    }
    std::fs::create_dir_all(out)?;
    let corpus = out.join("corpus");
    if !corpus.exists() {
        let synth = milan_synth::SynthConfig {
            units_per_layer: args.units_per_layer,
            image_size: 64,
            seed,
            keys: args.keys.clone(),
        };
        milan_synth::generate(&corpus, &synth, &|| {})?;
    }
    let truth = corpus_truth(&corpus)?;
    let neurons: Vec<NeuronId> = truth
        .keys()
        .map(|(m, l, u)| Ok(NeuronId::new(m.parse()?, l.clone(), *u)))
        .collect::<Result<_>>()?;
    let test = neurons.iter().filter(|n| is_test_neuron(seed, n)).count();
    eprintln!(
        "{} neurons, {test} held out for testing; {} rounds of {} sets",
        neurons.len(),
        args.rounds,
        args.batch
    );
    // Held-out neurons first, then a seeded random order: the same in both conditions.
    let initial: Vec<ModelDescription> = neurons
        .iter()
        .map(|n| {
            let p = if is_test_neuron(seed, n) { 2.0 } else { 0.0 }
                + unit_interval(seed, "initial-order", n);
            Ok(ModelDescription {
                model: n.key.to_string(),
                layer: n.layer.clone(),
                unit: i32::try_from(n.unit).context("unit number out of range")?,
                description: None,
                priority: Some(p),
            })
        })
        .collect::<Result<_>>()?;

    let mut results = Conditions {
        settings: settings.clone(),
        random: Vec::new(),
        active: Vec::new(),
    };
    for (name, priority) in [
        ("random", Priority::Random),
        ("active", Priority::Uncertainty),
    ] {
        let dir = out.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let data = dir.join("annotator");
        output_of(
            Command::new(exe)
                .args(["import", "--project", "p", "--data-dir"])
                .arg(&data)
                .arg(&corpus),
        )?;
        let requester = output_of(
            Command::new(exe)
                .args(["requester-token", "--data-dir"])
                .arg(&data),
        )?;
        let server = Serve::new(exe, &data)
            .args(Serve::NO_RATE_LIMITS)
            .quiet()
            .start()?;
        let base = server.base.clone();
        let client = Project::new(&base, "p", &requester);
        client.set_ordering(true)?;
        client.post_model_descriptions(0, "initial-order", &initial)?;
        let mut crowd = Crowd {
            api: Api::new(&base),
            requester: requester.clone(),
            workers: ["sim-a", "sim-b", "sim-c"]
                .iter()
                .map(|w| ((*w).to_owned(), None))
                .collect(),
        };
        for round in 1..=args.rounds {
            let sets = if round == 1 {
                test + args.batch
            } else {
                args.batch
            };
            let done = crowd.complete(sets, &truth)?;
            eprintln!("{name}: round {round}: {done} more sets described");
            let history = follow(
                FollowOptions {
                    annotator: base.clone(),
                    project: "p".into(),
                    token: requester.clone(),
                    out: dir.join("run"),
                    every: 1,
                    split: None,
                    source: args.features.source(),
                    run: RunOptions {
                        config: config.clone(),
                        seed,
                        resume: true,
                        backend: args.features.backend.clone(),
                        quiet: true,
                        init: None,
                    },
                    poll: Duration::from_millis(100),
                    max_rounds: Some(round),
                    until_idle: true,
                    give_up_after: Some(Duration::from_secs(60)),
                    bertscore: args.training.scorer.choice()?,
                    describe: Describe::Greedy,
                    priority,
                },
                device,
            )?;
            match priority {
                Priority::Uncertainty => results.active = history,
                _ => results.random = history,
            }
        }
    }

    Ok(results)
}

/// One seed's simulation.json, simulation.md and simulation.png in `out`; returns the table.
fn write_outcome(out: &Path, results: &Conditions) -> Result<String> {
    let (random, active) = (&results.random, &results.active);
    let mut md = String::from(
        "| round | annotated neurons | test neurons | random: MILAN-PMI BLEU | active: MILAN-PMI BLEU | random: greedy BLEU | active: greedy BLEU | random: PMI BERTScore | active: PMI BERTScore |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut curve: Vec<(f64, SystemScores)> = Vec::new();
    for (r, a) in random.iter().zip(active) {
        let get = |rec: &RoundRecord, s: &str| rec.results.get(s).map(|v| (v.bleu, v.bertscore_f));
        let (rp, ap) = (get(r, "milan-pmi"), get(a, "milan-pmi"));
        let (rg, ag) = (get(r, "captioner-greedy"), get(a, "captioner-greedy"));
        let f = |v: Option<(f64, f64)>, i: usize| {
            v.map_or("-".to_owned(), |v| {
                if i == 0 {
                    format!("{:.1}", v.0)
                } else {
                    format!("{:.3}", v.1)
                }
            })
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.round,
            r.annotated_neurons,
            r.test_neurons,
            f(rp, 0),
            f(ap, 0),
            f(rg, 0),
            f(ag, 0),
            f(rp, 1),
            f(ap, 1)
        ));
        let mut point = SystemScores::new();
        for (label, v) in [
            ("random: milan-pmi", rp),
            ("active: milan-pmi", ap),
            ("random: greedy", rg),
            ("active: greedy", ag),
        ] {
            if let Some(v) = v {
                point.insert(label.to_owned(), v);
            }
        }
        curve.push(((r.annotated_neurons - r.test_neurons) as f64, point));
    }
    write_files(out, &serde_json::to_vec_pretty(results)?, md, &curve)
}

/// simulation.json, simulation.md and simulation.png in `out`; returns the table.
fn write_files(
    out: &Path,
    json: &[u8],
    md: String,
    curve: &[(f64, SystemScores)],
) -> Result<String> {
    atomic::write(&out.join("simulation.json"), json)?;
    atomic::write(&out.join("simulation.md"), md.as_bytes())?;
    milan_trainer::util::plot::rounds_curve(&out.join("simulation.png"), curve)?;
    Ok(md)
}

/// One round over all seeds.
#[derive(Debug, Serialize)]
struct SummaryRound {
    round: usize,
    /// Annotated neurons outside the test side (train and validation), mean over seeds.
    training_neurons: f64,
    random: BTreeMap<String, SystemSummary>,
    active: BTreeMap<String, SystemSummary>,
    /// Seeds in which active ordering's MILAN-PMI BERTScore is above random ordering's.
    active_ahead: usize,
    seeds: usize,
}

#[derive(Debug, Serialize)]
struct Summary {
    seeds: Vec<u64>,
    rounds: Vec<SummaryRound>,
}

/// Mean and spread over seeds, round by round (as many rounds as every seed has).
fn summarize(seeds: &[u64], runs: &[Conditions]) -> Summary {
    let rounds = runs
        .iter()
        .map(|c| c.random.len().min(c.active.len()))
        .min()
        .unwrap_or(0);
    let systems = |pick: fn(&Conditions) -> &Vec<RoundRecord>, r: usize| {
        let mut names: Vec<&String> = runs
            .iter()
            .flat_map(|c| pick(c)[r].results.keys())
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let scores: Vec<_> = runs
                    .iter()
                    .filter_map(|c| pick(c)[r].results.get(name))
                    .collect();
                let bleu: Vec<f64> = scores.iter().map(|s| s.bleu).collect();
                let bert: Vec<f64> = scores.iter().map(|s| s.bertscore_f).collect();
                let rouge: Option<Vec<f64>> = scores.iter().map(|s| s.rouge_l()).collect();
                (
                    name.clone(),
                    SystemSummary {
                        bleu: MeanStd::of(&bleu),
                        bertscore_f: MeanStd::of(&bert),
                        rouge_l: rouge.map(|r| MeanStd::of(&r)),
                        protocol: scores.first().map_or(
                            milan_trainer::evaluation::scoring::Protocol::legacy(),
                            |s| s.protocol,
                        ),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let pmi = |rec: &RoundRecord| rec.results.get("milan-pmi").map(|s| s.bertscore_f);
    let rounds = (0..rounds)
        .map(|r| {
            let training: Vec<f64> = runs
                .iter()
                .map(|c| (c.random[r].annotated_neurons - c.random[r].test_neurons) as f64)
                .collect();
            SummaryRound {
                round: runs[0].random[r].round,
                training_neurons: MeanStd::of(&training).mean,
                random: systems(|c| &c.random, r),
                active: systems(|c| &c.active, r),
                active_ahead: runs
                    .iter()
                    .filter(|c| match (pmi(&c.active[r]), pmi(&c.random[r])) {
                        (Some(a), Some(b)) => a > b,
                        _ => false,
                    })
                    .count(),
                seeds: runs.len(),
            }
        })
        .collect();
    Summary {
        seeds: seeds.to_vec(),
        rounds,
    }
}

/// The summary's simulation.json, simulation.md and simulation.png in `out`; returns the table.
fn write_summary(out: &Path, summary: &Summary) -> Result<String> {
    let mut md = format!(
        "Mean ± sample std over seeds {:?}; BERTScore F1 except the last two columns (BLEU).\n\n\
         | round | training neurons | random: MILAN-PMI | active: MILAN-PMI | active ahead (PMI) | random: greedy | active: greedy | random: nearest neighbour | active: nearest neighbour | random: MILAN-PMI BLEU | active: MILAN-PMI BLEU |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        summary.seeds
    );
    let cell = |m: &BTreeMap<String, SystemSummary>, s: &str, bleu: bool| {
        m.get(s).map_or("-".to_owned(), |v| {
            if bleu {
                format!("{:.1} ± {:.1}", v.bleu.mean, v.bleu.std)
            } else {
                format!("{:.3} ± {:.3}", v.bertscore_f.mean, v.bertscore_f.std)
            }
        })
    };
    let mut curve: Vec<(f64, SystemScores)> = Vec::new();
    for r in &summary.rounds {
        md.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} of {} | {} | {} | {} | {} | {} | {} |\n",
            r.round,
            r.training_neurons,
            cell(&r.random, "milan-pmi", false),
            cell(&r.active, "milan-pmi", false),
            r.active_ahead,
            r.seeds,
            cell(&r.random, "captioner-greedy", false),
            cell(&r.active, "captioner-greedy", false),
            cell(&r.random, "nearest-neighbour", false),
            cell(&r.active, "nearest-neighbour", false),
            cell(&r.random, "milan-pmi", true),
            cell(&r.active, "milan-pmi", true),
        ));
        let mut point = SystemScores::new();
        for (label, m, s) in [
            ("random: milan-pmi", &r.random, "milan-pmi"),
            ("active: milan-pmi", &r.active, "milan-pmi"),
            ("random: greedy", &r.random, "captioner-greedy"),
            ("active: greedy", &r.active, "captioner-greedy"),
        ] {
            if let Some(v) = m.get(s) {
                point.insert(label.to_owned(), (v.bleu.mean, v.bertscore_f.mean));
            }
        }
        curve.push((r.training_neurons, point));
    }
    write_files(out, &serde_json::to_vec_pretty(summary)?, md, &curve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use milan_trainer::evaluation::scoring::Scores;

    fn record(round: usize, pmi: f64, nn: Option<f64>) -> RoundRecord {
        let mut results = BTreeMap::new();
        results.insert(
            "milan-pmi".to_owned(),
            Scores {
                bleu: 10.0 * pmi,
                rouge: None,
                bertscore_f: pmi,
                per_neuron: Vec::new(),
                per_neuron_rouge_l: Vec::new(),
                protocol: milan_trainer::evaluation::scoring::Protocol::AllReferences,
            },
        );
        if let Some(nn) = nn {
            results.insert(
                "nearest-neighbour".to_owned(),
                Scores {
                    bleu: 0.0,
                    rouge: None,
                    bertscore_f: nn,
                    per_neuron: Vec::new(),
                    per_neuron_rouge_l: Vec::new(),
                    protocol: milan_trainer::evaluation::scoring::Protocol::AllReferences,
                },
            );
        }
        RoundRecord {
            round,
            annotated_neurons: 20 * round + 10,
            train_neurons: 0,
            validation_neurons: 0,
            test_neurons: 10,
            results,
            posted: 0,
            seconds: 0.0,
            bertscore: String::new(),
        }
    }

    #[test]
    fn a_summary_gives_mean_spread_and_wins_over_the_rounds_every_seed_has() {
        let runs = [
            Conditions {
                settings: Value::Null,
                random: vec![record(1, 0.5, Some(0.4)), record(2, 0.6, None)],
                active: vec![record(1, 0.7, None), record(2, 0.5, None)],
            },
            Conditions {
                settings: Value::Null,
                random: vec![record(1, 0.3, None)],
                active: vec![record(1, 0.2, None)],
            },
        ];
        let summary = summarize(&[3, 4], &runs);
        assert_eq!(summary.rounds.len(), 1, "seed 4 has one round only");
        let r = &summary.rounds[0];
        assert_eq!((r.round, r.training_neurons, r.seeds), (1, 20.0, 2));
        let pmi = r.random["milan-pmi"].bertscore_f;
        assert!((pmi.mean - 0.4).abs() < 1e-12);
        assert!((pmi.std - 0.02f64.sqrt()).abs() < 1e-12, "sample std");
        assert!((r.random["milan-pmi"].bleu.mean - 4.0).abs() < 1e-12);
        // A system only some seeds scored is summarised over those.
        assert_eq!(r.random["nearest-neighbour"].bertscore_f.mean, 0.4);
        assert!(!r.active.contains_key("nearest-neighbour"));
        assert_eq!(r.active_ahead, 1, "active is ahead on seed 3 only");
    }
}
