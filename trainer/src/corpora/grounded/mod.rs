//! `trainer grounded`: a corpus of real neurons with grounded descriptions, where MILAN's claims
//! can hold or fail (docs/training.md).
//!
//! Scenes ([`scenes`]) are stamp photographs on drawn backgrounds with per-pixel ground truth, in
//! two sets of disjoint object categories (`scenes_a`, `scenes_b`: the across-dataset shift).
//! Networks: EfficientNet-Lite0 with its ImageNet weights, the same architecture randomly
//! initialised (a control, only ever tested on), and three small networks trained here on each
//! set ([`nets`]: a classifier, an autoencoder and a generator, three architectures and three
//! tasks). Each unit's exemplars come from [`crate::probing::exemplars`] over its set's scenes
//! (the generator's over their latents, [`decoder`]); [`dissect`] labels the unit
//! by the IoU of its masks with every concept; [`annotators`] turn labels into three
//! descriptions by simulated workers. Everything is written as MILANNOTATIONS through `shared`,
//! with `labels.csv` beside each folder's annotations and `roster.json` (the splits) at the root.

pub mod annotators;
pub mod compexp;
pub mod decoder;
pub mod dissect;
pub mod nets;
pub mod scenes;

use milan_shared::atomic;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use milan_shared::roster::{self, Roster, RosterModel};
use milan_shared::{ModelKey, Task};

use crate::probing::exemplars::{self, ExemplarConfig, UnitHook};
use annotators::Habits;
use milan_networks::Network;
use scenes::{Concepts, SceneSet, Stamp, Truth};

/// The networks `--networks` can name.
pub const NETWORKS: [&str; 5] = [
    "efficientnet_lite0",
    "random_lite0",
    "convnet",
    "autoencoder",
    "decoder",
];

/// The scene sets: their names (the datasets of the keys).
pub const SETS: [&str; 2] = ["scenes_a", "scenes_b"];

/// Blocks of EfficientNet-Lite0 dissected (early to late: 24, 40, 80, 112, 320 units).
const LITE0_LAYERS: [&str; 5] = [
    "_blocks.2",
    "_blocks.4",
    "_blocks.7",
    "_blocks.10",
    "_blocks.15",
];

/// The stamp categories used, alternating between the two sets (folder names of Tux Paint's
/// stamps; symbols are alphabets and the rest have too few photographs).
pub const CATEGORIES: [&str; 12] = [
    "animals",
    "plants",
    "food",
    "vehicles",
    "household",
    "seasonal",
    "town",
    "space",
    "clothes",
    "sports",
    "hobbies",
    "military",
];

#[derive(Debug, Clone)]
pub struct GroundedOptions {
    pub out: PathBuf,
    /// Scenes, networks and what is reused between builds (default `<out>/.grounded`).
    pub work: PathBuf,
    pub networks: Vec<String>,
    /// Scenes per set.
    pub scenes: usize,
    /// Share of the worker pool that writes generic descriptions.
    pub generic_share: f64,
    pub pool: usize,
    /// Training epochs of the small networks.
    pub epochs: usize,
    /// Keep only the first N units of each layer (quick corpora); all when `None`.
    pub max_units: Option<usize>,
    pub seed: u64,
    pub quiet: bool,
}

/// A network to dissect over one scene set.
struct Job {
    key: ModelKey,
    task: Task,
    base: bool,
    set: usize,
}

/// Where the stamps and their categories come from.
#[derive(Debug)]
pub struct StampSource {
    /// Per set: the object category names and their stamps (categories indexed in the set).
    pub sets: [(Vec<String>, Vec<Stamp>); 2],
    /// The EfficientNet-Lite0 weights (`efficientnet-lite0` asset); `None` leaves those
    /// networks out with an error if asked for.
    pub lite0: Option<PathBuf>,
}

/// Loads Tux Paint's stamps from the unpacked package, each scaled to at most 224 pixels.
pub fn tuxpaint_stamps(root: &Path) -> Result<[(Vec<String>, Vec<Stamp>); 2]> {
    let all = crate::corpora::photos::stamps(root)?;
    let mut sets: [(Vec<String>, Vec<Stamp>); 2] = Default::default();
    for (i, category) in CATEGORIES.iter().enumerate() {
        let set = &mut sets[i % 2];
        let index = set.0.len();
        set.0.push((*category).to_owned());
        let files: Vec<&PathBuf> = all
            .iter()
            .filter(|(c, _)| c == category)
            .map(|(_, p)| p)
            .collect();
        ensure!(
            !files.is_empty(),
            "{}: no {category} stamps",
            root.display()
        );
        for f in files {
            let img = image::open(f)
                .with_context(|| format!("reading {}", f.display()))?
                .to_rgba8();
            let (w, h) = img.dimensions();
            let scale = 224.0 / w.max(h) as f32;
            let img = if scale < 1.0 {
                image::imageops::resize(
                    &img,
                    ((w as f32 * scale) as u32).max(1),
                    ((h as f32 * scale) as u32).max(1),
                    image::imageops::FilterType::Triangle,
                )
            } else {
                img
            };
            set.1.push(Stamp {
                category: index,
                image: img,
            });
        }
    }
    Ok(sets)
}

fn unit_seed(seed: u64, key: &ModelKey, layer: &str, unit: usize) -> u64 {
    format!("{key}/{layer}/{unit}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Labels and describes each unit as the exemplar writer writes it.
struct Describer<'a> {
    key: ModelKey,
    scenes: &'a SceneSet,
    pool: &'a [Habits],
    seed: u64,
    rows: csv::Writer<Vec<u8>>,
    /// Units described, and how many have a top concept a describer sees, by kind.
    units: usize,
    seen: std::collections::BTreeMap<String, usize>,
}

impl UnitHook for Describer<'_> {
    fn describe(
        &mut self,
        layer: &str,
        unit: usize,
        masks: &[u8],
        ids: &[u64],
    ) -> Result<Vec<String>> {
        let label = dissect::label(&self.scenes.concepts, &self.scenes.truths, masks, ids);
        let concepts = &self.scenes.concepts;
        let name = |c: Option<(usize, f64)>| -> (String, String, String) {
            match c {
                Some((c, iou)) => {
                    let (kind, name) = concepts.get(c);
                    (name.to_owned(), kind.name().to_owned(), format!("{iou:.4}"))
                }
                None => (String::new(), String::new(), "0".into()),
            }
        };
        let (top, top_kind, top_iou) = name(label.top());
        self.units += 1;
        if label
            .top()
            .is_some_and(|(_, iou)| iou >= annotators::SEEN_IOU)
        {
            *self.seen.entry(top_kind.clone()).or_default() += 1;
        }
        let (second, second_kind, second_iou) = name(label.ious.get(1).copied());
        let concept_name = |c: usize| concepts.get(c).1.to_owned();
        let (compexp, compexp_iou) = match crate::corpora::grounded::compexp::explain(
            &dissect::cells(concepts, &self.scenes.truths, masks, ids),
            concepts.len(),
            &concept_name,
        ) {
            Some((formula, iou)) => (formula.render(&concept_name), format!("{iou:.4}")),
            None => (String::new(), "0".into()),
        };
        self.rows.write_record([
            layer,
            &unit.to_string(),
            &top,
            &top_kind,
            &top_iou,
            &second,
            &second_kind,
            &second_iou,
            &format!("{:.4}", label.area),
            label.place.map_or("", |p| p.name()),
            &compexp,
            &compexp_iou,
        ])?;
        Ok(annotators::describe_unit(
            concepts,
            &label,
            self.pool,
            unit_seed(self.seed, &self.key, layer, unit),
        ))
    }

    fn extras(&mut self) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = std::mem::replace(&mut self.rows, csv::Writer::from_writer(Vec::new()));
        Ok(vec![(LABELS.to_owned(), rows.into_inner()?)])
    }
}

/// The labels file beside each grounded folder's annotations.csv.
pub const LABELS: &str = "labels.csv";

/// A unit's labels from `labels.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitLabels {
    /// NetDissect's description: the top-IoU concept (empty for a unit that overlaps none).
    pub concept: String,
    /// CompExp's formula (`(animals OR red)`; empty for a unit that overlaps nothing), when the
    /// file has the column (corpora built before it have not).
    pub compexp: Option<String>,
}

/// The labels of every labelled unit of a model folder, by (layer, unit); `None` when the
/// folder has no labels.csv.
pub fn read_labels(
    folder: &Path,
) -> Result<Option<std::collections::HashMap<(String, u32), UnitLabels>>> {
    let path = folder.join(LABELS);
    if !path.is_file() {
        return Ok(None);
    }
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    let compexp = reader
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .iter()
        .position(|h| h == "compexp");
    let mut out = std::collections::HashMap::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: line {}", path.display(), i + 2))?;
        let unit: u32 = row
            .get(1)
            .and_then(|u| u.parse().ok())
            .with_context(|| format!("{}: line {}: field unit", path.display(), i + 2))?;
        let labels = UnitLabels {
            concept: row.get(2).unwrap_or("").to_owned(),
            compexp: compexp.map(|c| row.get(c).unwrap_or("").to_owned()),
        };
        out.insert((row.get(0).unwrap_or("").to_owned(), unit), labels);
    }
    Ok(Some(out))
}

/// The version of the scenes' drawing, in the names of everything drawn or trained from them
/// (2: words written in some scenes), so a build never reuses scenes of another drawing.
pub const SCENES_VERSION: u32 = 2;

/// The option checks of [`build`].
fn check(options: &GroundedOptions) -> Result<()> {
    for n in &options.networks {
        ensure!(
            NETWORKS.contains(&n.as_str()),
            "unknown network {n:?}: the grounded corpus has {}",
            NETWORKS.join(", ")
        );
    }
    ensure!(
        (0.0..=1.0).contains(&options.generic_share),
        "--generic-share must be between 0 and 1"
    );
    ensure!(options.pool >= 3, "--pool needs at least 3 workers");
    ensure!(options.scenes >= 20, "--scenes must be at least 20");
    Ok(())
}

/// Phase 1, the scenes of both sets: drawn once per (set, count, seed) into `options.work` and
/// reused by later builds.
fn scene_sets(options: &GroundedOptions, stamps: &StampSource) -> Result<Vec<(PathBuf, SceneSet)>> {
    let mut sets = Vec::new();
    for (s, name) in SETS.iter().enumerate() {
        let (categories, set_stamps) = &stamps.sets[s];
        let dir = options.work.join(format!(
            "scenes-v{SCENES_VERSION}-{name}-{}-{}",
            options.scenes, options.seed
        ));
        if !dir.join("concepts.json").is_file() {
            let bar = bar(options.scenes, &format!("drawing {name}"), options.quiet);
            scenes::write_set(
                &dir,
                set_stamps,
                &Concepts::with_text(categories.clone()),
                options.scenes,
                options.seed.wrapping_add(s as u64),
                &bar,
            )?;
            bar.finish_and_clear();
        }
        let set = SceneSet::open(&dir)?;
        ensure!(
            set.truths.len() == options.scenes,
            "{}: {} scenes, expected {}",
            dir.display(),
            set.truths.len(),
            options.scenes
        );
        sets.push((dir, set));
    }
    Ok(sets)
}

/// The networks to dissect: each base network on both scene sets, the random-weights control on
/// the first.
fn jobs_of(networks: &[String]) -> Vec<Job> {
    let key = |arch: &str, set: usize| -> ModelKey {
        ModelKey::new(arch, SETS[set]).expect("valid key parts")
    };
    let mut jobs = Vec::new();
    for n in networks {
        match n.as_str() {
            "random_lite0" => jobs.push(Job {
                key: key(n, 0),
                task: Task::Classifier,
                base: false,
                set: 0,
            }),
            _ => {
                // The autoencoder learns from images without labels (self-supervised, in neither
                // task group, as the paper's DINO); the decoder generates from a latent, the
                // paper's BigGAN at a small scale.
                let task = match n.as_str() {
                    "autoencoder" => Task::SelfSupervised,
                    "decoder" => Task::Generator,
                    _ => Task::Classifier,
                };
                for s in 0..2 {
                    jobs.push(Job {
                        key: key(n, s),
                        task,
                        base: true,
                        set: s,
                    });
                }
            }
        }
    }
    jobs
}

/// Phase 2, one network: trained (or loaded), its exemplars computed over its scene set and
/// every unit labelled and described on the way. Returns its entry of `grounded.json`.
fn dissect_job(
    job: &Job,
    (scene_dir, set): &(PathBuf, SceneSet),
    stamps: &StampSource,
    pool: &[Habits],
    options: &GroundedOptions,
    device: &Device,
) -> Result<serde_json::Value> {
    let (subject, layers, report) = network(job, scene_dir, set, stamps, options, device)?;
    let config = ExemplarConfig {
        layers,
        max_units: options.max_units,
        ..ExemplarConfig::default()
    };
    let mut describer = Describer {
        key: job.key.clone(),
        scenes: set,
        pool,
        seed: options.seed,
        rows: csv::Writer::from_writer(Vec::new()),
        units: 0,
        seen: Default::default(),
    };
    describer.rows.write_record([
        "layer",
        "unit",
        "concept",
        "kind",
        "iou",
        "second",
        "second_kind",
        "second_iou",
        "area",
        "place",
        "compexp",
        "compexp_iou",
    ])?;
    if !options.quiet {
        eprintln!("grounded: {}", job.key);
    }
    let images = scene_dir.join("images");
    match &subject {
        Subject::Images(net) => exemplars::compute_with(
            net.as_ref(),
            &job.key,
            &images,
            &options.out,
            &config,
            device,
            Some(&mut describer),
        )?,
        Subject::Latents(decoder) => exemplars::compute_probe(
            &decoder::LatentProbe::new(decoder, &images, device)?,
            &job.key,
            &options.out,
            &config,
            device,
            Some(&mut describer),
        )?,
    };
    let labelled: usize = describer.seen.values().sum();
    if !options.quiet {
        eprintln!(
            "  {} units; {:.0}% with a concept at IoU >= {} ({})",
            describer.units,
            100.0 * labelled as f64 / describer.units.max(1) as f64,
            annotators::SEEN_IOU,
            describer
                .seen
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(serde_json::json!({
        "key": job.key.to_string(),
        "network": report,
        "units": describer.units,
        "top_concept_seen_by_kind": describer.seen,
    }))
}

/// Builds the corpus; returns the keys written.
pub fn build(
    options: &GroundedOptions,
    stamps: &StampSource,
    device: &Device,
) -> Result<Vec<ModelKey>> {
    check(options)?;
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let sets = scene_sets(options, stamps)?;
    let jobs = jobs_of(&options.networks);
    ensure!(!jobs.is_empty(), "no networks to dissect");
    let pool = annotators::pool(options.pool, options.generic_share, options.seed);
    let mut reports = Vec::new();
    for job in &jobs {
        reports.push(dissect_job(
            job,
            &sets[job.set],
            stamps,
            &pool,
            options,
            device,
        )?);
    }

    let keys: Vec<ModelKey> = jobs.iter().map(|j| j.key.clone()).collect();
    let roster = roster_of(&jobs);
    atomic::write(&options.out.join(roster::FILE), roster.to_json().as_bytes())?;
    atomic::write(
        &options.out.join("grounded.json"),
        &serde_json::to_vec_pretty(&serde_json::json!({
            "scenes": options.scenes,
            "generic_share": options.generic_share,
            "pool": options.pool,
            "epochs": options.epochs,
            "max_units": options.max_units,
            "seed": options.seed,
            "sets": [stamps.sets[0].0, stamps.sets[1].0],
            "networks": reports,
        }))?,
    )?;
    Ok(keys)
}

/// The splits over the networks built: each across-* pair only when both sides were built.
fn roster_of(jobs: &[Job]) -> Roster {
    let models: Vec<RosterModel> = jobs
        .iter()
        .map(|j| RosterModel {
            key: j.key.clone(),
            task: j.task,
            base: j.base,
        })
        .collect();
    let mut roster = Roster {
        models,
        across_arch: Vec::new(),
        across_dataset: Vec::new(),
        across_task: Vec::new(),
    };
    let has = |r: &Roster, g: &str| r.group(g).is_ok_and(|k| !k.is_empty());
    let pair = |a: &str, b: &str| [a.to_owned(), b.to_owned()];
    let mut arch = vec![
        pair("efficientnet_lite0", "convnet"),
        pair("convnet", "efficientnet_lite0"),
        pair("base", "random_lite0/scenes_a"),
    ];
    arch.retain(|[a, b]| has(&roster, a) && has(&roster, b));
    let mut dataset = vec![pair("scenes_a", "scenes_b"), pair("scenes_b", "scenes_a")];
    dataset.retain(|[a, b]| has(&roster, a) && has(&roster, b));
    let mut task = vec![pair("cls", "gen"), pair("gen", "cls")];
    task.retain(|[a, b]| has(&roster, a) && has(&roster, b));
    roster.across_arch = arch;
    roster.across_dataset = dataset;
    roster.across_task = task;
    roster
}

/// What a job's exemplars are computed over: a network probed with the scenes, or the decoder's
/// generator probed with the scenes' latents.
enum Subject {
    Images(Box<dyn Network>),
    Latents(Box<nets::Decoder>),
}

impl Subject {
    fn of(net: nets::SmallNet) -> Subject {
        match net {
            nets::SmallNet::Decoder(d) => Subject::Latents(d),
            other => Subject::Images(Box::new(other)),
        }
    }
}

/// The network of a job, its layers, and what was done to get it.
fn network(
    job: &Job,
    scene_dir: &Path,
    set: &SceneSet,
    stamps: &StampSource,
    options: &GroundedOptions,
    device: &Device,
) -> Result<(Subject, Vec<String>, serde_json::Value)> {
    let arch = job.key.arch();
    let lite0_layers = || LITE0_LAYERS.iter().map(|s| (*s).to_owned()).collect();
    let weights = || {
        stamps.lite0.clone().context(
            "EfficientNet-Lite0's weights are missing: run `trainer assets fetch efficientnet-lite0`",
        )
    };
    match arch {
        "efficientnet_lite0" => {
            let w = weights()?;
            let net = milan_networks::efficientnet::EfficientNetLite0::load(
                &w.join("efficientnet-lite0-57934424.pth"),
                device,
            )?;
            Ok((
                Subject::Images(Box::new(net)),
                lite0_layers(),
                serde_json::json!({"weights": "ImageNet (efficientnet_pytorch)"}),
            ))
        }
        "random_lite0" => {
            let w = weights()?;
            let net = milan_networks::efficientnet::EfficientNetLite0::random(
                &w.join("efficientnet-lite0-57934424.pth"),
                options.seed,
                device,
            )?;
            Ok((
                Subject::Images(Box::new(net)),
                lite0_layers(),
                serde_json::json!({"weights": format!("random, seed {}", options.seed)}),
            ))
        }
        "convnet" | "autoencoder" | "decoder" => {
            let classes = set.concepts.objects.len();
            let path = options.work.join(format!(
                "{arch}-v{SCENES_VERSION}-{}-{}-{}e-{}.bpk",
                job.key.dataset(),
                options.scenes,
                options.epochs,
                options.seed
            ));
            let report_path = path.with_extension("json");
            if path.is_file() && report_path.is_file() {
                let net = nets::load(arch, classes, &path, device)?;
                let report: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&report_path)?)?;
                let layers = net.layers();
                return Ok((Subject::of(net), layers, report));
            }
            let files = exemplars::list_images(&scene_dir.join("images"))?;
            let mut images = Vec::with_capacity(files.len() * 3 * milan_networks::SIZE.pow(2));
            for f in &files {
                images.extend(nets::preprocess(&exemplars::load_image(f)?));
            }
            let text = set.concepts.text();
            let labels: Vec<usize> = set.truths.iter().map(|t| main_object(t, text)).collect();
            let (net, report) = nets::train(
                arch,
                &images,
                &labels,
                classes,
                options.epochs,
                options.seed.wrapping_add(job.set as u64),
                options.quiet,
                device,
            )?;
            nets::save(&net, &path)?;
            let report = serde_json::to_value(&report)?;
            atomic::write(&report_path, &serde_json::to_vec_pretty(&report)?)?;
            let layers = net.layers();
            Ok((Subject::of(net), layers, report))
        }
        other => bail!("unknown network {other}"),
    }
}

/// The stamp category covering most of a scene (its class for the classifier); written words
/// (`text`, the text category) are not an object to classify.
pub fn main_object(truth: &Truth, text: Option<usize>) -> usize {
    let mut counts = [0usize; 256];
    for &o in &truth.objects {
        counts[usize::from(o)] += 1;
    }
    if let Some(t) = text {
        counts[t + 1] = 0;
    }
    (1..256)
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .map_or(0, |c| c - 1)
}

fn bar(n: usize, what: &str, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("{spinner} {msg} {bar:40} {pos}/{len} [{elapsed}]")
            .expect("valid template"),
    );
    bar.set_message(what.to_owned());
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}
