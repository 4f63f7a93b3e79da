//! The paper's editing case, end to end (docs/applications.md): a small classifier is trained on
//! photo composites where the images of every class carry a spurious cue — the class name written
//! in a corner — in a share of the training images only; its units are described by a MILAN
//! trained on other networks (the grounded corpus, whose describers say "text"); the units
//! described as text are switched off; accuracy on test images without the cue is compared
//! before and after, and against switching off as many units drawn at random.
//!
//! Everything is drawn from one seed: the same options give the same images, network, units and
//! figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use milan_shared::progress::Progress;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::Serialize;

use crate::applications::ablation::chosen_units;
use crate::applications::analysis::{Concept, Described};
use crate::corpora::grounded::nets::{self, CONVNET_LAYERS, ConvNet, SmallNet};
use crate::corpora::grounded::scenes::{Stamp, place_stamp};
use crate::corpora::lettering;
use crate::corpora::photos::background_with_kind;
use crate::corpus::{Corpus, FeatureSource};
use crate::probing::exemplars::{self, ExemplarConfig};
use milan_model::train::Trained;
use milan_networks::SIZE;
use milan_shared::random::{below_f32 as below, uniform_f32 as uniform};

/// The words a unit's description must mention to count as a text unit (the reference's
/// "word", "text", "letter", and "writing"; plurals match).
pub const TEXT_WORDS: [&str; 4] = ["text", "letters", "words", "writing"];

/// Pixels between the cue and the image's edge.
const MARGIN: i64 = 4;
/// Glyph scale of the cue: 16 pixels high.
const CUE_SCALE: u32 = 2;

#[derive(Debug, Clone)]
pub struct EditOptions {
    /// Everything the case writes: probe images, the classifier, exemplars, descriptions and the
    /// report.
    pub out: PathBuf,
    /// Classes: the first N stamp categories.
    pub classes: usize,
    pub train: usize,
    /// Images the exemplars are drawn from (drawn as the training images are, cue and all).
    pub probe: usize,
    /// Clean images (no cue) that rank the text units and choose how many to switch off.
    pub validation: usize,
    pub test: usize,
    /// Share of training (and probe) images that carry their class name.
    pub cue_share: f64,
    pub epochs: usize,
    /// Random draws of as many units as the text units.
    pub draws: usize,
    /// Describe (and draw from) only the first N units of each layer: quick runs; all when
    /// `None`.
    pub max_units: Option<usize>,
    /// A unit whose description mentions one of these is a text unit.
    pub words: Vec<String>,
    pub features: FeatureSource,
    pub seed: u64,
    pub quiet: bool,
}

/// What is written on an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cue {
    None,
    /// The name of class `c` (the image's own, or another's).
    Name(usize),
}

/// One set of images: each image's class and what is written on it.
struct ImageSet {
    seed: u64,
    images: Vec<(usize, Cue)>,
}

/// The stamp categories as classes: the two grounded sets' categories interleaved back into
/// [`crate::corpora::grounded::CATEGORIES`] order, the first `n` kept, re-indexed from 0.
pub fn classes_from(
    sets: [(Vec<String>, Vec<Stamp>); 2],
    n: usize,
) -> Result<(Vec<String>, Vec<Stamp>)> {
    let [(names_a, stamps_a), (names_b, stamps_b)] = sets;
    let mut order: Vec<(usize, usize)> = Vec::new();
    for i in 0..names_a.len().max(names_b.len()) {
        if i < names_a.len() {
            order.push((0, i));
        }
        if i < names_b.len() {
            order.push((1, i));
        }
    }
    ensure!(
        (2..=order.len()).contains(&n),
        "--classes must be between 2 and {} (the stamp categories)",
        order.len()
    );
    let mut names = Vec::new();
    let mut stamps = Vec::new();
    for (class, &(set, category)) in order.iter().take(n).enumerate() {
        let (set_names, set_stamps) = if set == 0 {
            (&names_a, &stamps_a)
        } else {
            (&names_b, &stamps_b)
        };
        names.push(set_names[category].clone());
        stamps.extend(
            set_stamps
                .iter()
                .filter(|s| s.category == category)
                .map(|s| Stamp {
                    category: class,
                    image: s.image.clone(),
                }),
        );
    }
    Ok((names, stamps))
}

/// Image `i` of a set: a background, one stamp of `class`, and the cue in one of the four
/// corners. The cue is drawn after everything else, so an image with and without it is the same
/// picture.
fn compose(
    stamps: &[Stamp],
    names: &[String],
    class: usize,
    cue: Cue,
    seed: u64,
    i: usize,
) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let (mut canvas, _) = background_with_kind(&mut rng);
    let of: Vec<&Stamp> = stamps.iter().filter(|s| s.category == class).collect();
    let stamp = of[below(&mut rng, of.len())];
    place_stamp(&mut rng, &mut canvas, stamp, |_| {});
    let corner = below(&mut rng, 4);
    if let Cue::Name(c) = cue {
        let word = names[c].to_uppercase().replace('_', " ");
        let (w, h) = lettering::extent(&word, CUE_SCALE);
        let side = i64::from(SIZE as u32);
        let x = if corner.is_multiple_of(2) {
            MARGIN
        } else {
            side - MARGIN - i64::from(w)
        };
        let y = if corner < 2 {
            MARGIN
        } else {
            side - MARGIN - i64::from(h)
        };
        let colour = lettering::contrasting(&canvas, x, y, w, h);
        lettering::draw(&mut canvas, &word, x, y, CUE_SCALE, colour);
    }
    canvas
}

impl ImageSet {
    /// `n` images, classes in turn, each with its own name written with probability `share`.
    fn cued(n: usize, classes: usize, share: f64, seed: u64) -> ImageSet {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc0e);
        let images = (0..n)
            .map(|i| {
                let class = i % classes;
                let cue = if f64::from(uniform(&mut rng)) < share {
                    Cue::Name(class)
                } else {
                    Cue::None
                };
                (class, cue)
            })
            .collect();
        ImageSet { seed, images }
    }

    /// The same pictures with `cue(class, i)` written instead.
    fn with_cue(&self, mut cue: impl FnMut(usize, usize) -> Cue) -> ImageSet {
        ImageSet {
            seed: self.seed,
            images: self
                .images
                .iter()
                .enumerate()
                .map(|(i, &(class, _))| (class, cue(class, i)))
                .collect(),
        }
    }

    fn draw(&self, stamps: &[Stamp], names: &[String], i: usize) -> RgbImage {
        let (class, cue) = self.images[i];
        compose(stamps, names, class, cue, self.seed, i)
    }

    /// Images `range` preprocessed for the classifier, as one flat batch.
    fn batch(&self, stamps: &[Stamp], names: &[String], range: std::ops::Range<usize>) -> Vec<f32> {
        let mut out = Vec::with_capacity(range.len() * 3 * SIZE * SIZE);
        for i in range {
            out.extend(nets::preprocess(&self.draw(stamps, names, i)));
        }
        out
    }

    fn labels(&self) -> Vec<usize> {
        self.images.iter().map(|(c, _)| *c).collect()
    }

    fn cued_share(&self) -> f64 {
        let cued = self.images.iter().filter(|(_, c)| *c != Cue::None).count();
        cued as f64 / self.images.len().max(1) as f64
    }
}

/// A unit described as text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextUnit {
    pub layer: String,
    pub unit: u32,
    pub description: String,
    /// Accuracy on the clean validation images with this unit alone switched off: the text
    /// units are switched off in decreasing order of it.
    pub validation_without: f64,
}

/// Test accuracy under one way of writing on the test images, with some number of units off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub name: String,
    pub intact: f64,
    pub text_off: f64,
    /// One accuracy per random draw of as many units as the text units switched off.
    pub random_off: Vec<f64>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Sample standard deviation.
fn sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &a| {
            (lo.min(a), hi.max(a))
        })
}

impl Condition {
    pub fn random_mean(&self) -> f64 {
        mean(&self.random_off)
    }

    pub fn random_sd(&self) -> f64 {
        sd(&self.random_off)
    }
}

/// Accuracy with the first `n` text units (in their order) switched off, and with the first `n`
/// of each random draw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    pub n: usize,
    /// On the clean validation images (this chooses `n`).
    pub text_validation: f64,
    /// On the test images without the cue.
    pub text_test: f64,
    pub random_test: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EditReport {
    pub classes: Vec<String>,
    pub train: usize,
    pub probe: usize,
    pub validation: usize,
    pub test: usize,
    pub cue_share: f64,
    /// Share of the training images that did carry their name (drawn with `cue_share`).
    pub train_cued: f64,
    pub epochs: usize,
    /// Accuracy on the last 10% of the training images (held out; cue as in training).
    pub held_out_accuracy: f64,
    pub units: usize,
    pub words: Vec<String>,
    /// In the order they are switched off.
    pub text_units: Vec<TextUnit>,
    /// Text units per layer.
    pub text_units_by_layer: BTreeMap<String, usize>,
    pub curve: Vec<CurvePoint>,
    /// Text units switched off: the curve's point with the best clean validation accuracy
    /// (the fewest of equals).
    pub chosen: usize,
    /// The test conditions with the chosen text units off, and with every text unit off.
    pub at_chosen: Vec<Condition>,
    pub at_all: Vec<Condition>,
    /// Whether the paper's effect appears: see [`EditReport::effect`].
    pub effect_appears: bool,
    pub seconds: BTreeMap<String, f64>,
}

/// The test conditions, in order: the one the paper's claim is about first.
pub const CONDITIONS: [&str; 3] = [
    "without the cue",
    "with the right name",
    "with a wrong name",
];

/// The curve's numbers of units off: 0, 1, 2, 3, 4, 6, 8, 12, 16, ... (each power of two and
/// the midpoint above it) up to `k`, and `k`.
pub fn steps(k: usize) -> Vec<usize> {
    let mut out = vec![0];
    let mut p = 1;
    while p <= k {
        out.push(p);
        if p >= 2 && p + p / 2 <= k {
            out.push(p + p / 2);
        }
        p *= 2;
    }
    if *out.last().expect("0") != k {
        out.push(k);
    }
    out
}

impl EditReport {
    /// The paper's effect, strictly: switching off the text units chosen on clean validation
    /// images raises test accuracy without the cue above the intact network's and above every
    /// random draw of as many units.
    pub fn effect(&self) -> bool {
        let Some(clean) = self.at_chosen.first() else {
            return false;
        };
        self.chosen > 0
            && clean.text_off > clean.intact
            && clean.random_off.iter().all(|&r| clean.text_off > r)
    }

    pub fn markdown(&self) -> String {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        let mut md = String::new();
        md.push_str(&format!(
            "Classifier: `convnet` ({} classes: {}), {} training images ({:.0}% with their class \
             name written in a corner), {} epochs; held-out accuracy {}.\n\n",
            self.classes.len(),
            self.classes.join(", "),
            self.train,
            100.0 * self.train_cued,
            self.epochs,
            pct(self.held_out_accuracy)
        ));
        md.push_str(&format!(
            "Units described as text (a description mentions {}): **{} of {}** ({}).\n\n",
            self.words.join(", "),
            self.text_units.len(),
            self.units,
            if self.text_units_by_layer.is_empty() {
                "none".to_owned()
            } else {
                self.text_units_by_layer
                    .iter()
                    .map(|(l, n)| format!("{l}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        let draws = self.at_chosen.first().map_or(0, |c| c.random_off.len());
        for (what, n, rows) in [
            (
                "chosen on the clean validation images",
                self.chosen,
                &self.at_chosen,
            ),
            ("every text unit", self.text_units.len(), &self.at_all),
        ] {
            md.push_str(&format!(
                "{n} units off ({what}):\n\n| {} test images | intact | text units off | {draws} random draws of {n} units: mean ± sd (min-max) |\n|---|---:|---:|---:|\n",
                self.test
            ));
            for c in rows {
                let (lo, hi) = range(&c.random_off);
                md.push_str(&format!(
                    "| {} | {} | {} | {} ± {:.1} ({}-{}) |\n",
                    c.name,
                    pct(c.intact),
                    pct(c.text_off),
                    pct(c.random_mean()),
                    100.0 * c.random_sd(),
                    pct(lo),
                    pct(hi)
                ));
            }
            md.push('\n');
        }
        md.push_str(&format!(
            "Accuracy without the cue as text units are switched off one after another ({} \
             clean validation images choose how many):\n\n| units off | validation | test | \
             random units off: test, mean ± sd |\n|---:|---:|---:|---:|\n",
            self.validation
        ));
        for p in &self.curve {
            md.push_str(&format!(
                "| {}{} | {} | {} | {} ± {:.1} |\n",
                p.n,
                if p.n == self.chosen { " (chosen)" } else { "" },
                pct(p.text_validation),
                pct(p.text_test),
                pct(mean(&p.random_test)),
                100.0 * sd(&p.random_test)
            ));
        }
        md.push_str(&format!(
            "\nThe paper's effect (the chosen text units off beat the intact network and every \
             random draw on test images without the cue): **{}**.\n",
            if self.effect_appears {
                "appears"
            } else {
                "does not appear"
            }
        ));
        md
    }
}

/// A set of images drawn and preprocessed once, for the many passes of the measurements.
struct Rendered {
    x: Vec<f32>,
    labels: Vec<usize>,
}

impl Rendered {
    fn of(set: &ImageSet, stamps: &[Stamp], names: &[String]) -> Rendered {
        Rendered {
            x: set.batch(stamps, names, 0..set.images.len()),
            labels: set.labels(),
        }
    }
}

/// Top-1 accuracy of `net` over `set` with `off` switched off.
fn accuracy(
    net: &ConvNet,
    set: &Rendered,
    classes: usize,
    off: &BTreeMap<usize, Vec<usize>>,
    device: &Device,
) -> f64 {
    let n = set.labels.len();
    let per = 3 * SIZE * SIZE;
    let mut right = 0usize;
    let batch = 64;
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let x = Tensor::<4>::from_data(
            TensorData::new(
                set.x[start * per..end * per].to_vec(),
                [end - start, 3, SIZE, SIZE],
            ),
            device,
        );
        let (_, logp) = net.forward_ablated(x, off);
        let values = logp.into_data().try_to_vec::<f32>().expect("floats");
        let top = crate::applications::ablation::top1(&values, classes);
        right += top
            .iter()
            .zip(&set.labels[start..end])
            .filter(|(p, l)| p == l)
            .count();
    }
    right as f64 / n.max(1) as f64
}

/// The first `n` of `units` (layer index, unit), by layer.
fn first(units: &[(usize, usize)], n: usize) -> BTreeMap<usize, Vec<usize>> {
    let mut off: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(l, u) in &units[..n.min(units.len())] {
        off.entry(l).or_default().push(u);
    }
    off
}

/// Seconds spent in each phase of the case, for the report.
struct Laps {
    seconds: BTreeMap<String, f64>,
    clock: Instant,
}

impl Laps {
    fn start() -> Laps {
        Laps {
            seconds: BTreeMap::new(),
            clock: Instant::now(),
        }
    }

    fn lap(&mut self, what: &str) {
        self.seconds
            .insert(what.to_owned(), self.clock.elapsed().as_secs_f64());
        self.clock = Instant::now();
    }
}

/// The option checks of [`run`]; returns the number of classes.
fn check(options: &EditOptions, names: &[String]) -> Result<usize> {
    ensure!(options.train >= 20, "--train must be at least 20 images");
    ensure!(
        options.probe >= 15,
        "--probe must be at least 15 images (the exemplars per unit)"
    );
    ensure!(options.test >= 1, "--test must be at least 1 image");
    ensure!(
        options.validation >= 1,
        "--validation must be at least 1 image"
    );
    ensure!(
        (0.0..=1.0).contains(&options.cue_share),
        "--cue-share must be between 0 and 1"
    );
    ensure!(!options.words.is_empty(), "--words needs at least one word");
    let classes = names.len();
    ensure!(classes >= 2, "the case needs at least 2 classes");
    Ok(classes)
}

/// The case's key: where its exemplars are written and what its descriptions name.
const EDIT_KEY: &str = "convnet/spurious_text";

/// Top-1 accuracy of the trained classifier with some units switched off.
struct Ablation<'a> {
    net: &'a ConvNet,
    classes: usize,
    device: &'a Device,
}

impl Ablation<'_> {
    fn accuracy(&self, set: &Rendered, off: &BTreeMap<usize, Vec<usize>>) -> f64 {
        accuracy(self.net, set, self.classes, off, self.device)
    }
}

/// Phase 1: the classifier, trained where the class name is written on a share of the images;
/// saved as `classifier.bpk`. Returns it and its held-out accuracy.
fn train_classifier(
    options: &EditOptions,
    train: &ImageSet,
    names: &[String],
    stamps: &[Stamp],
    device: &Device,
) -> Result<(SmallNet, f64)> {
    let images = train.batch(stamps, names, 0..options.train);
    let (net, report) = nets::train(
        "convnet",
        &images,
        &train.labels(),
        names.len(),
        options.epochs,
        options.seed,
        options.quiet,
        device,
    )?;
    drop(images);
    nets::save(&net, &options.out.join("classifier.bpk"))?;
    Ok((net, report.held_out))
}

/// Phase 2: the classifier's exemplars, over probe images drawn as the training images were
/// (written to `probe/`). Returns the exemplar root.
fn probe_exemplars(
    options: &EditOptions,
    net: &SmallNet,
    names: &[String],
    stamps: &[Stamp],
    say: &dyn Fn(String),
    device: &Device,
) -> Result<PathBuf> {
    let probe = ImageSet::cued(
        options.probe,
        names.len(),
        options.cue_share,
        options.seed + 1,
    );
    let probe_dir = options.out.join("probe");
    let _ = std::fs::remove_dir_all(&probe_dir);
    std::fs::create_dir_all(&probe_dir)?;
    for i in 0..options.probe {
        probe
            .draw(stamps, names, i)
            .save(probe_dir.join(format!("{i:05}.png")))
            .with_context(|| format!("writing {}", probe_dir.display()))?;
    }
    let key = EDIT_KEY.parse()?;
    let exemplar_root = options.out.join("exemplars");
    let config = ExemplarConfig {
        layers: CONVNET_LAYERS.iter().map(|s| (*s).to_owned()).collect(),
        max_units: options.max_units,
        ..ExemplarConfig::default()
    };
    say(format!(
        "exemplars of its units over {} probe images",
        options.probe
    ));
    exemplars::compute(net, &key, &probe_dir, &exemplar_root, &config, device)?;
    Ok(exemplar_root)
}

/// Phase 3: the classifier's units described by a MILAN that never saw it; written to
/// `descriptions.csv`. Returns the corpus of its exemplars and the descriptions.
fn describe_units(
    options: &EditOptions,
    describer: &Trained,
    exemplar_root: &Path,
    say: &dyn Fn(String),
    device: &Device,
) -> Result<(Corpus, Vec<Described>)> {
    let mut source = options.features.clone();
    source.encoder = describer.info.encoder.clone();
    let corpus = Corpus::load(&exemplar_root.join(EDIT_KEY), &source, true, device)?;
    say(format!("describing its {} units", corpus.neurons.len()));
    let bar = (!options.quiet).then(|| Progress::new(corpus.neurons.len(), "describe", "units"));
    let descriptions =
        describer.describe(&corpus, &describer.info.config.decode, false, device, |n| {
            if let Some(b) = &bar {
                b.inc(n as u64);
            }
        });
    if let Some(b) = &bar {
        b.finish();
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["layer", "unit", "description"])?;
    let mut described = Vec::with_capacity(descriptions.len());
    for (n, d) in corpus.neurons.iter().zip(&descriptions) {
        w.write_record([n.id.layer.as_str(), &n.id.unit.to_string(), d])?;
        described.push(Described {
            model: EDIT_KEY.to_owned(),
            layer: n.id.layer.clone(),
            unit: n.id.unit,
            description: d.clone(),
        });
    }
    milan_shared::atomic::write(&options.out.join("descriptions.csv"), &w.into_inner()?)?;
    Ok((corpus, described))
}

/// The clean validation images and the three test sets of [`CONDITIONS`], all without the
/// cue the classifier was trained with (or with the right or a wrong name written on them).
fn probe_sets(
    options: &EditOptions,
    names: &[String],
    stamps: &[Stamp],
) -> (Rendered, Vec<Rendered>) {
    let classes = names.len();
    let validation = Rendered::of(
        &ImageSet::cued(options.validation, classes, 0.0, options.seed + 3),
        stamps,
        names,
    );
    let test = ImageSet::cued(options.test, classes, 0.0, options.seed + 2);
    let mut wrong_rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x3a7);
    let tests: Vec<Rendered> = [
        test.with_cue(|_, _| Cue::None),
        test.with_cue(|class, _| Cue::Name(class)),
        test.with_cue(|class, _| {
            Cue::Name((class + 1 + below(&mut wrong_rng, classes - 1)) % classes)
        }),
    ]
    .iter()
    .map(|set| Rendered::of(set, stamps, names))
    .collect();
    (validation, tests)
}

/// A text unit with its (layer index, unit) in the convnet.
type Located = (TextUnit, (usize, usize));

/// Phase 4a: the text units, ranked by how clean validation accuracy fares with each alone off
/// (as the reference ranks its candidates on its validation split), highest first; with each
/// its (layer index, unit), and the count per layer.
fn rank_text_units(
    options: &EditOptions,
    chosen_units: &[(String, u32)],
    described: &[Described],
    ablation: &Ablation,
    validation: &Rendered,
) -> Result<(Vec<Located>, BTreeMap<String, usize>)> {
    let bar =
        (!options.quiet).then(|| Progress::new(chosen_units.len(), "rank text units", "units"));
    let mut ranked: Vec<Located> = Vec::new();
    let mut by_layer: BTreeMap<String, usize> = BTreeMap::new();
    for (layer, unit) in chosen_units {
        let l = layer_index(layer).context("a described layer of the convnet")?;
        let off = BTreeMap::from([(l, vec![*unit as usize])]);
        let description = described
            .iter()
            .find(|d| &d.layer == layer && d.unit == *unit)
            .map(|d| d.description.clone())
            .unwrap_or_default();
        ranked.push((
            TextUnit {
                layer: layer.clone(),
                unit: *unit,
                description,
                validation_without: ablation.accuracy(validation, &off),
            },
            (l, *unit as usize),
        ));
        *by_layer.entry(layer.clone()).or_default() += 1;
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    // Highest first; the describe order breaks ties (a stable sort), so the ranking is
    // deterministic.
    ranked.sort_by(|a, b| b.0.validation_without.total_cmp(&a.0.validation_without));
    Ok((ranked, by_layer))
}

/// The index of a convnet layer by name.
fn layer_index(layer: &str) -> Option<usize> {
    CONVNET_LAYERS.iter().position(|n| *n == layer)
}

/// Phase 4b: accuracy as the text units are switched off one after another (at [`steps`]),
/// against as many units of each random draw.
fn ablation_curve(
    options: &EditOptions,
    order: &[(usize, usize)],
    draws: &[Vec<(usize, usize)>],
    ablation: &Ablation,
    validation: &Rendered,
    test: &Rendered,
) -> Vec<CurvePoint> {
    let points = steps(order.len());
    let bar = (!options.quiet).then(|| Progress::new(points.len(), "switch units off", "steps"));
    let mut curve = Vec::new();
    for &n in &points {
        curve.push(CurvePoint {
            n,
            text_validation: ablation.accuracy(validation, &first(order, n)),
            text_test: ablation.accuracy(test, &first(order, n)),
            random_test: draws
                .iter()
                .map(|d| ablation.accuracy(test, &first(d, n)))
                .collect(),
        });
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    curve
}

/// The number of text units with the best validation accuracy; the fewest of equals.
fn best_count(curve: &[CurvePoint]) -> usize {
    curve
        .iter()
        .fold(None::<&CurvePoint>, |best, p| match best {
            Some(b) if b.text_validation >= p.text_validation => Some(b),
            _ => Some(p),
        })
        .map_or(0, |p| p.n)
}

/// Every test condition, intact and with the first `n` text units (and of each random draw) off.
fn conditions_at(
    n: usize,
    order: &[(usize, usize)],
    draws: &[Vec<(usize, usize)>],
    ablation: &Ablation,
    tests: &[Rendered],
) -> Vec<Condition> {
    CONDITIONS
        .iter()
        .zip(tests)
        .map(|(name, set)| Condition {
            name: (*name).to_owned(),
            intact: ablation.accuracy(set, &BTreeMap::new()),
            text_off: ablation.accuracy(set, &first(order, n)),
            random_off: draws
                .iter()
                .map(|d| ablation.accuracy(set, &first(d, n)))
                .collect(),
        })
        .collect()
}

/// Runs the case: draws the images, trains the classifier, computes its exemplars, describes its
/// units with `describer`, switches the text units off and measures; writes `descriptions.csv`
/// and the report ([`write_report`]) into `options.out`.
pub fn run(
    options: &EditOptions,
    names: &[String],
    stamps: &[Stamp],
    describer: &Trained,
    device: &Device,
) -> Result<EditReport> {
    let classes = check(options, names)?;
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let mut laps = Laps::start();
    let say = |line: String| {
        if !options.quiet {
            eprintln!("edit: {line}");
        }
    };

    let train = ImageSet::cued(options.train, classes, options.cue_share, options.seed);
    say(format!(
        "training convnet on {} images, {:.0}% with their class name",
        options.train,
        100.0 * train.cued_share()
    ));
    let (net, held_out_accuracy) = train_classifier(options, &train, names, stamps, device)?;
    let SmallNet::ConvNet(convnet) = &net else {
        unreachable!("trained a convnet")
    };
    laps.lap("train");

    let exemplar_root = probe_exemplars(options, &net, names, stamps, &say, device)?;
    laps.lap("exemplars");

    let (corpus, described) = describe_units(options, describer, &exemplar_root, &say, device)?;
    laps.lap("describe");

    // Phase 4: the text units switched off one after another; as many random units against them.
    let concept = Concept::exactly(&options.words);
    let chosen_units = chosen_units(&described, Some(&concept));
    let candidates: Vec<(usize, usize)> = corpus
        .neurons
        .iter()
        .filter_map(|n| Some((layer_index(&n.id.layer)?, n.id.unit as usize)))
        .collect();
    say(format!(
        "{} of {} units described as text",
        chosen_units.len(),
        corpus.neurons.len()
    ));
    let (validation, tests) = probe_sets(options, names, stamps);
    let ablation = Ablation {
        net: convnet,
        classes,
        device,
    };
    let (ranked, by_layer) =
        rank_text_units(options, &chosen_units, &described, &ablation, &validation)?;
    let order: Vec<(usize, usize)> = ranked.iter().map(|r| r.1).collect();
    let text_units: Vec<TextUnit> = ranked.into_iter().map(|r| r.0).collect();
    let k = order.len();
    let mut draws_rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0xd4a3);
    let draws: Vec<Vec<(usize, usize)>> = (0..options.draws)
        .map(|_| milan_shared::random::shuffled_forward(&candidates, &mut draws_rng))
        .collect();
    let curve = ablation_curve(options, &order, &draws, &ablation, &validation, &tests[0]);
    let chosen = best_count(&curve);
    say(format!(
        "testing with {chosen} and with all {k} text units off"
    ));
    let at_chosen = conditions_at(chosen, &order, &draws, &ablation, &tests);
    let at_all = conditions_at(k, &order, &draws, &ablation, &tests);
    laps.lap("ablate");

    let mut out = EditReport {
        classes: names.to_vec(),
        train: options.train,
        probe: options.probe,
        validation: options.validation,
        test: options.test,
        cue_share: options.cue_share,
        train_cued: train.cued_share(),
        epochs: options.epochs,
        held_out_accuracy,
        units: corpus.neurons.len(),
        words: options.words.clone(),
        text_units,
        text_units_by_layer: by_layer,
        curve,
        chosen,
        at_chosen,
        at_all,
        effect_appears: false,
        seconds: laps.seconds,
    };
    out.effect_appears = out.effect();
    write_report(&options.out, &out)?;
    Ok(out)
}

/// `edit.json`, `edit.md`, `edit.png` (test accuracy without the cue against the units switched
/// off: text units in order, random draws as mean and range, the chosen number marked) and
/// `edit-conditions.png` (the three test conditions at the chosen number).
fn write_report(dir: &Path, report: &EditReport) -> Result<()> {
    milan_shared::atomic::write(
        &dir.join("edit.json"),
        serde_json::to_string_pretty(report)?.as_bytes(),
    )?;
    milan_shared::atomic::write(&dir.join("edit.md"), report.markdown().as_bytes())?;
    let pct = |x: f64| 100.0 * x;
    let draws = report.at_chosen.first().map_or(0, |c| c.random_off.len());
    let text_line = |images: &str, value: fn(&CurvePoint) -> f64| {
        crate::util::plot::Curve::Line(
            format!("text units, in order ({images})"),
            report
                .curve
                .iter()
                .map(|p| (p.n as f64, pct(value(p))))
                .collect(),
        )
    };
    crate::util::plot::curves(
        &dir.join("edit.png"),
        "Switching off the units described as text",
        "units switched off",
        "accuracy on images without the cue (%)",
        &[
            text_line("validation", |p| p.text_validation),
            text_line("test", |p| p.text_test),
            crate::util::plot::Curve::Band(
                format!("random units (test): mean, min-max of {draws} draws"),
                report
                    .curve
                    .iter()
                    .map(|p| {
                        let (lo, hi) = range(&p.random_test);
                        (p.n as f64, pct(lo), pct(mean(&p.random_test)), pct(hi))
                    })
                    .collect(),
            ),
        ],
        Some((report.chosen as f64, "chosen on validation")),
    )?;
    let cell = |v: f64| Some((pct(v), pct(v), pct(v)));
    let series: Vec<crate::util::plot::CategorySeries> = vec![
        (
            "intact".to_owned(),
            report.at_chosen.iter().map(|c| cell(c.intact)).collect(),
        ),
        (
            format!("{} text units off", report.chosen),
            report.at_chosen.iter().map(|c| cell(c.text_off)).collect(),
        ),
        (
            format!("as many random units off: mean, min-max of {draws} draws"),
            report
                .at_chosen
                .iter()
                .map(|c| {
                    let (lo, hi) = range(&c.random_off);
                    (!c.random_off.is_empty()).then(|| (pct(c.random_mean()), pct(lo), pct(hi)))
                })
                .collect(),
        ),
    ];
    let categories: Vec<String> = report
        .at_chosen
        .iter()
        .map(|c| format!("test images {}", c.name))
        .collect();
    crate::util::plot::category_interval_plot(
        &dir.join("edit-conditions.png"),
        "The chosen text units switched off",
        &categories,
        "test accuracy (%)",
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_permutations_and_the_first_n_are_switched_off() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let candidates: Vec<(usize, usize)> = [4, 2, 3]
            .iter()
            .enumerate()
            .flat_map(|(l, &w)| (0..w).map(move |u| (l, u)))
            .collect();
        let draw = milan_shared::random::shuffled_forward(&candidates, &mut rng);
        let mut sorted = draw.clone();
        sorted.sort();
        assert_eq!(sorted, candidates, "a permutation");
        assert_ne!(draw, candidates, "in another order (seeded)");
        let off = first(&draw, 5);
        assert_eq!(off.values().map(Vec::len).sum::<usize>(), 5);
        for (l, units) in &off {
            for u in units {
                assert!(draw[..5].contains(&(*l, *u)));
            }
        }
        assert_eq!(first(&draw, 20).values().map(Vec::len).sum::<usize>(), 9);
        assert!(first(&draw, 0).is_empty());
        assert_eq!(steps(0), [0]);
        assert_eq!(steps(1), [0, 1]);
        assert_eq!(steps(7), [0, 1, 2, 3, 4, 6, 7]);
        assert_eq!(steps(16), [0, 1, 2, 3, 4, 6, 8, 12, 16]);
    }

    #[test]
    fn the_effect_needs_chosen_text_units_that_beat_intact_and_every_draw() {
        let condition = |intact, text_off, random_off: Vec<f64>| Condition {
            name: CONDITIONS[0].into(),
            intact,
            text_off,
            random_off,
        };
        let mut report = EditReport {
            classes: vec!["a".into(), "b".into()],
            train: 20,
            probe: 15,
            validation: 10,
            test: 10,
            cue_share: 0.5,
            train_cued: 0.5,
            epochs: 1,
            held_out_accuracy: 0.5,
            units: 320,
            words: vec!["text".into()],
            text_units: vec![TextUnit {
                layer: "conv2".into(),
                unit: 3,
                description: "text".into(),
                validation_without: 0.6,
            }],
            text_units_by_layer: BTreeMap::from([("conv2".into(), 1)]),
            curve: Vec::new(),
            chosen: 1,
            at_chosen: vec![condition(0.6, 0.7, vec![0.6, 0.65])],
            at_all: vec![condition(0.6, 0.7, vec![0.6, 0.65])],
            effect_appears: false,
            seconds: BTreeMap::new(),
        };
        assert!(report.effect());
        assert!(report.markdown().contains("1 units off (chosen"));
        report.at_chosen[0] = condition(0.6, 0.7, vec![0.6, 0.7]);
        assert!(!report.effect(), "a draw as good");
        report.at_chosen[0] = condition(0.7, 0.7, vec![0.6]);
        assert!(!report.effect(), "no better than intact");
        report.at_chosen[0] = condition(0.6, 0.7, vec![0.6]);
        report.chosen = 0;
        assert!(!report.effect(), "none chosen");
        let c = condition(0.5, 0.5, vec![0.4, 0.6]);
        assert!((c.random_mean() - 0.5).abs() < 1e-12);
        assert!((c.random_sd() - 0.1414).abs() < 1e-3);
    }

    fn stamp(category: usize, colour: [u8; 3]) -> Stamp {
        Stamp {
            category,
            image: image::RgbaImage::from_pixel(
                16,
                16,
                image::Rgba([colour[0], colour[1], colour[2], 255]),
            ),
        }
    }

    #[test]
    fn classes_come_from_both_sets_in_category_order() {
        let sets = [
            (
                vec!["animals".to_owned(), "food".to_owned()],
                vec![
                    stamp(0, [1, 0, 0]),
                    stamp(1, [2, 0, 0]),
                    stamp(1, [3, 0, 0]),
                ],
            ),
            (
                vec!["vehicles".to_owned(), "plants".to_owned()],
                vec![stamp(0, [4, 0, 0]), stamp(1, [5, 0, 0])],
            ),
        ];
        let (names, stamps) = classes_from(sets.clone(), 3).unwrap();
        assert_eq!(names, ["animals", "vehicles", "food"]);
        let of = |class: usize| -> Vec<u8> {
            stamps
                .iter()
                .filter(|s| s.category == class)
                .map(|s| s.image.get_pixel(0, 0)[0])
                .collect()
        };
        assert_eq!((of(0), of(1), of(2)), (vec![1], vec![4], vec![2, 3]));
        assert!(classes_from(sets.clone(), 5).is_err());
        assert!(classes_from(sets, 1).is_err());
    }

    #[test]
    fn the_cue_is_the_class_name_in_a_corner_of_the_same_picture() {
        let names = ["animals".to_owned(), "food".to_owned()];
        let stamps = [stamp(0, [200, 30, 30]), stamp(1, [30, 200, 30])];
        let (w, h) = lettering::extent("ANIMALS", CUE_SCALE);
        let side = SIZE as u32;
        for i in 0..8 {
            let clean = compose(&stamps, &names, 0, Cue::None, 5, i);
            let cued = compose(&stamps, &names, 0, Cue::Name(0), 5, i);
            let wrong = compose(&stamps, &names, 0, Cue::Name(1), 5, i);
            let changed: Vec<(u32, u32)> = clean
                .enumerate_pixels()
                .filter(|(x, y, p)| cued.get_pixel(*x, *y) != *p)
                .map(|(x, y, _)| (x, y))
                .collect();
            assert!(!changed.is_empty(), "image {i}: the name is written");
            // Every changed pixel lies in one corner's box, MARGIN pixels from the edges.
            let m = MARGIN as u32;
            let in_corner = |(x, y): (u32, u32)| {
                let left = (m..m + w).contains(&x);
                let right = (side - m - w..side - m).contains(&x);
                let top = (m..m + h).contains(&y);
                let bottom = (side - m - h..side - m).contains(&y);
                (left || right) && (top || bottom)
            };
            assert!(
                changed.iter().all(|&p| in_corner(p)),
                "image {i}: {:?}",
                changed[0]
            );
            assert_ne!(cued, wrong, "another class's name is another word");
        }
    }
}
