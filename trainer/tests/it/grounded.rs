//! The grounded corpus: labels on composites with known content, and a small corpus (drawn
//! stamps, the three small networks trained for one epoch) built and fitted end to end with real
//! EfficientNet-Lite0 features and BERTScore (assets fetched by scripts/test).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use image::{Rgba, RgbaImage};
use milan_model::train::{EarlyStopping, MilanConfig, RunOptions};
use milan_shared::milannotations::Dataset;
use milan_shared::roster::Roster;
use milan_shared::split::Split;
use milan_trainer::corpora::grounded::scenes::{self, Concepts, SIZE, Stamp};
use milan_trainer::corpora::grounded::{self, GroundedOptions, StampSource, dissect};
use milan_trainer::corpus::{Corpus, FeatureSource};
use milan_trainer::experiments::fit::{FitOptions, fit};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn asset(file: &str, name: &str) -> PathBuf {
    let p = root().join("assets").join(file);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo run -p milan-trainer -- assets fetch {name}` (scripts/test does)",
        p.display()
    );
    p
}

/// A cut-out of one flat colour: a disc, a bar or a cross on a transparent square.
fn shape(kind: usize, colour: [u8; 3], category: usize) -> Stamp {
    let image = RgbaImage::from_fn(64, 64, |x, y| {
        let (dx, dy) = (x as i32 - 32, y as i32 - 32);
        let inside = match kind {
            0 => dx * dx + dy * dy < 28 * 28,
            1 => dy.abs() < 8,
            _ => dx.abs() < 7 || dy.abs() < 7,
        };
        Rgba([
            colour[0],
            colour[1],
            colour[2],
            if inside { 255 } else { 0 },
        ])
    });
    Stamp { category, image }
}

fn stamp_sets() -> [(Vec<String>, Vec<Stamp>); 2] {
    [
        (
            vec!["discs".into(), "bars".into()],
            vec![shape(0, [20, 60, 230], 0), shape(1, [250, 140, 0], 1)],
        ),
        (
            vec!["crosses".into(), "rings".into()],
            vec![shape(2, [30, 200, 40], 0), shape(0, [240, 60, 180], 1)],
        ),
    ]
}

#[test]
fn labels_on_composites_name_the_concept_the_masks_cover() {
    let [(names, stamps), _] = stamp_sets();
    let concepts = Concepts::with_text(names);
    let n = (SIZE * SIZE) as usize;
    let drawn: Vec<_> = (0..40)
        .map(|i| scenes::draw(&stamps, 2, concepts.text(), 5, i))
        .collect();
    let truths: Vec<_> = drawn.iter().map(|(_, t)| t.clone()).collect();
    // A unit whose masks are exactly the bars in 15 scenes that have bars.
    let with_bars: Vec<u64> = (0..truths.len() as u64)
        .filter(|&i| truths[i as usize].objects.contains(&2))
        .take(15)
        .collect();
    assert!(with_bars.len() >= 5, "the draw has bars");
    let mut masks = Vec::new();
    for &i in &with_bars {
        masks.extend(truths[i as usize].objects.iter().map(|&o| u8::from(o == 2)));
    }
    let label = dissect::label(&concepts, &truths, &masks, &with_bars);
    assert_eq!(
        label.top().map(|t| t.0),
        Some(1),
        "bars: {:?}",
        &label.ious[..3]
    );
    assert!(
        (label.top().unwrap().1 - 1.0).abs() < 1e-12,
        "the masks are the bars"
    );
    // The bars are orange: orange comes next, above anything the bars do not touch.
    let objects = concepts.objects.len();
    let orange = objects + 5 + 4;
    assert_eq!(label.ious[1].0, orange);
    // A unit firing on the background of every scene is labelled by its pattern where all
    // 15 scenes share it.
    let pattern = truths[0].pattern;
    let same: Vec<u64> = (0..truths.len() as u64)
        .filter(|&i| truths[i as usize].pattern == pattern)
        .take(15)
        .collect();
    let mut masks = Vec::new();
    for &i in &same {
        masks.extend(truths[i as usize].objects.iter().map(|&o| u8::from(o == 0)));
    }
    let label = dissect::label(&concepts, &truths, &masks, &same);
    assert_eq!(label.top(), Some((objects + usize::from(pattern), 1.0)));
    assert_eq!(masks.len(), same.len() * n);
    // A unit firing on the written words is labelled text, the category workers call "text",
    // "letters", "words" or "writing".
    let text = concepts.text().unwrap();
    let with_words: Vec<u64> = (0..truths.len() as u64)
        .filter(|&i| truths[i as usize].objects.contains(&(text as u8 + 1)))
        .take(15)
        .collect();
    assert!(with_words.len() >= 5, "the draw has words");
    let mut masks = Vec::new();
    for &i in &with_words {
        masks.extend(
            truths[i as usize]
                .objects
                .iter()
                .map(|&o| u8::from(usize::from(o) == text + 1)),
        );
    }
    let label = dissect::label(&concepts, &truths, &masks, &with_words);
    assert_eq!(label.top(), Some((text, 1.0)));
    assert_eq!(concepts.get(text).1, "text");
}

#[test]
fn a_small_grounded_corpus_builds_and_fits_end_to_end() {
    let lite0 = asset(
        "efficientnet-lite0/efficientnet-lite0-57934424.pth",
        "efficientnet-lite0",
    );
    let minilm = asset("minilm/model.safetensors", "minilm");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("corpus");
    let device = Device::flex();
    let options = GroundedOptions {
        out: out.clone(),
        work: tmp.path().join("work"),
        networks: vec!["convnet".into(), "autoencoder".into(), "decoder".into()],
        scenes: 40,
        generic_share: 0.25,
        pool: 8,
        epochs: 1,
        max_units: Some(3),
        seed: 0,
        quiet: true,
    };
    let stamps = StampSource {
        sets: stamp_sets(),
        lite0: Some(lite0.parent().unwrap().to_owned()),
    };
    let keys = grounded::build(&options, &stamps, &device).unwrap();
    let names: Vec<String> = keys.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "convnet/scenes_a",
            "convnet/scenes_b",
            "autoencoder/scenes_a",
            "autoencoder/scenes_b",
            "decoder/scenes_a",
            "decoder/scenes_b"
        ]
    );
    let roster = Roster::read(&out).unwrap().expect("roster.json");
    let arch: Vec<_> = roster.experiments(Split::AcrossArch);
    assert!(
        arch.is_empty(),
        "one architecture family per task here: {arch:?}"
    );
    assert_eq!(roster.experiments(Split::AcrossTask).len(), 2);
    // The generator is the gen group, as BigGAN is the paper's; the autoencoder (no labels)
    // belongs to neither task group, as the paper's self-supervised DINO.
    let group = |g: &str| -> Vec<String> {
        roster
            .group(g)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(group("gen"), ["decoder/scenes_a", "decoder/scenes_b"]);
    assert_eq!(group("cls"), ["convnet/scenes_a", "convnet/scenes_b"]);
    decoder_exemplars_are_generated_from_the_stored_latents(&out, tmp.path(), &device);
    assert_eq!(
        roster.experiments(Split::AcrossDataset)[0].name,
        "scenes_a->scenes_b"
    );

    for key in &keys {
        let folder = out.join(key.arch()).join(key.dataset());
        let data = Dataset::open(&folder).unwrap();
        let units: usize = data.layers().iter().map(|l| l.units()).sum();
        assert_eq!(data.annotated().len(), units, "{key}: every unit described");
        assert!(data.annotated().iter().all(|a| a.descriptions.len() == 3));
        for a in data.annotated() {
            for d in &a.descriptions {
                let words = d.split_whitespace().count();
                assert!((3..=8).contains(&words), "{key}: {d:?}");
            }
        }
        let labels = grounded::read_labels(&folder).unwrap().expect("labels.csv");
        assert_eq!(labels.len(), units);
        // The masks and labels agree: relabelling a unit from its stored masks gives the stored
        // concept.
        let set = scenes::SceneSet::open(&tmp.path().join(format!(
            "work/scenes-v{}-{}-40-0",
            grounded::SCENES_VERSION,
            key.dataset()
        )))
        .unwrap();
        let layer = &data.layers()[0];
        let masks = layer.masks().unit(0).iter().copied().collect::<Vec<u8>>();
        let again = dissect::label(&set.concepts, &set.truths, &masks, layer.ids(0));
        let stored = &labels[&(layer.name().to_owned(), 0)];
        assert_eq!(
            again
                .top()
                .map(|(c, _)| set.concepts.get(c).1.to_owned())
                .unwrap_or_default(),
            stored.concept
        );
        // CompExp's formula, searched again from the same masks, is the stored one, and fits
        // the masks at least as well as NetDissect's single concept.
        let name = |c: usize| set.concepts.get(c).1.to_owned();
        let cells = dissect::cells(&set.concepts, &set.truths, &masks, layer.ids(0));
        let formula =
            milan_trainer::corpora::grounded::compexp::explain(&cells, set.concepts.len(), &name);
        assert_eq!(
            formula
                .as_ref()
                .map(|(f, _)| f.render(&name))
                .unwrap_or_default(),
            stored.compexp.clone().expect("a compexp column")
        );
        if let (Some((_, iou)), Some((_, top))) = (formula, again.top()) {
            assert!(iou >= top - 1e-12, "{iou} < {top}");
        }
    }

    // Fit across-task on it: every system, netdissect included, with paired intervals.
    let corpus = Corpus::load(
        &out,
        &FeatureSource {
            weights: Some(lite0.clone()),
            cache: tmp.path().join("cache"),
            ..FeatureSource::default()
        },
        false,
        &device,
    )
    .unwrap();
    assert!(corpus.neurons.iter().all(|n| n.label.is_some()));
    let config = MilanConfig {
        embedding: 8,
        hidden: 16,
        attention: Some(8),
        lm_embedding: 8,
        lm_hidden: 16,
        max_epochs: 2,
        lm_max_epochs: 2,
        early_stopping: EarlyStopping::Reference,
        decode: milan_model::decoding::DecodeConfig {
            beam: 4,
            ..Default::default()
        },
        ..MilanConfig::default()
    };
    let summary = fit(
        &corpus,
        &FitOptions {
            split: Split::AcrossTask,
            direction: Some("cls->gen".into()),
            trials: 2,
            out: tmp.path().join("run"),
            run: RunOptions {
                config,
                seed: 0,
                resume: false,
                backend: "flex".into(),
                quiet: true,
                init: None,
            },
            bertscore: milan_trainer::evaluation::scoring::BertScoreChoice::Custom {
                dir: minilm.parent().unwrap().to_owned(),
                layers: None,
            },
            roster: Some(roster),
            splits_from: None,
            baseline_labels: Default::default(),
        },
        &device,
    )
    .unwrap();
    let e = &summary.experiments[0];
    for system in [
        "milan-pmi",
        "captioner-beam",
        "captioner-greedy",
        "nearest-neighbour",
        "netdissect",
        "compexp",
        "annotators",
    ] {
        let r = &e.results[system];
        assert!(r.bertscore_f.mean.is_finite(), "{system}");
        assert!(r.rouge_l.is_some_and(|x| x.mean.is_finite()), "{system}");
    }
    assert_eq!(
        e.results["annotators"].protocol,
        milan_trainer::evaluation::scoring::Protocol::LeaveOneAnnotatorOut
    );
    assert_eq!(
        e.results["compexp"].protocol,
        milan_trainer::evaluation::scoring::Protocol::AllReferences
    );
    // Against every system but itself and the annotators (another protocol).
    assert_eq!(e.differences.len(), 5);
    assert!(e.differences.iter().all(|d| d.against != "annotators"));
    for d in &e.differences {
        assert!(d.low <= d.mean && d.mean <= d.high, "{d:?}");
    }
    assert!(summary.bertscore.contains("rescaled with"));
    assert!(!summary.bertscore_is_papers);
    let md = std::fs::read_to_string(tmp.path().join("run/summary.md")).unwrap();
    assert!(
        md.contains("netdissect")
            && md.contains("compexp")
            && md.contains("95% interval")
            && md.contains("not the paper's"),
        "{md}"
    );

    // The editing case at a tiny size, with this run as the describer (issue 20, item 5).
    let describer_dir = milan_model::train::resolve_trial(
        &tmp.path()
            .join("run")
            .join(milan_trainer::experiments::summary::folder_name(&e.name)),
    )
    .unwrap();
    let describer = milan_model::train::load(&describer_dir, &device).unwrap();
    editing_case_runs_at_a_tiny_size(&describer, &lite0, tmp.path(), &device);
}

/// The decoder's folder is a generator's (issue 38, item 6): its ids index `latents.npy`, one
/// latent per scene, and every stored exemplar image is the picture the trained generator draws
/// from that latent (not the scene), while the masks stay on the scene's truth.
fn decoder_exemplars_are_generated_from_the_stored_latents(
    out: &Path,
    tmp: &Path,
    device: &Device,
) {
    use milan_trainer::corpora::grounded::{decoder::LatentProbe, nets};
    use milan_trainer::probing::exemplars::Probe;
    let folder = out.join("decoder/scenes_a");
    let latents: ndarray::Array2<f32> =
        ndarray_npy::read_npy(folder.join("latents.npy")).expect("latents.npy");
    assert_eq!(latents.shape(), [40, nets::LATENT]);
    let record = std::fs::read_to_string(folder.join("latents.json")).unwrap();
    assert!(record.contains("latents.npy"), "{record}");
    assert_eq!(
        std::fs::read_to_string(folder.join("images.txt"))
            .unwrap()
            .lines()
            .count(),
        40
    );
    let weights = std::fs::read_dir(tmp.join("work"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("decoder-") && name.contains("scenes_a") && name.ends_with(".bpk")
        })
        .expect("the trained decoder in the work folder");
    let nets::SmallNet::Decoder(decoder) = nets::load("decoder", 2, &weights, device).unwrap()
    else {
        panic!("a decoder")
    };
    let scenes_dir = tmp.join(format!(
        "work/scenes-v{}-scenes_a-40-0/images",
        grounded::SCENES_VERSION
    ));
    let probe = LatentProbe::new(&decoder, &scenes_dir, device).unwrap();
    let again =
        ndarray::Array2::from_shape_vec((40, nets::LATENT), probe.latents().to_vec()).unwrap();
    assert!(
        again
            .iter()
            .zip(latents.iter())
            .all(|(a, b)| (a - b).abs() < 1e-5),
        "the latents are the encoder's codes of the scenes"
    );
    let data = Dataset::open(&folder).unwrap();
    let names: Vec<&str> = data.layers().iter().map(|l| l.name()).collect();
    assert_eq!(names, nets::GENERATOR_LAYERS);
    let layer = &data.layers()[1];
    let ids = layer.ids(0).to_vec();
    let stored = layer.images().expect("images.npy");
    let scene = milan_trainer::probing::exemplars::load_image(
        &milan_trainer::probing::exemplars::list_images(&scenes_dir).unwrap()[ids[0] as usize],
    )
    .unwrap();
    let first: Vec<u8> = stored
        .unit(0)
        .iter()
        .take(3 * (SIZE * SIZE) as usize)
        .copied()
        .collect();
    assert_eq!(first, probe.picture(ids[0] as usize).unwrap());
    let scene_chw: Vec<u8> = (0..3)
        .flat_map(|c| scene.pixels().map(move |p| p[c]))
        .collect();
    assert_ne!(first, scene_chw, "an exemplar is a generated picture");
}

/// `trainer edit`'s pipeline on the drawn stamps: every figure it reports is recomputed or
/// checked against what it wrote.
fn editing_case_runs_at_a_tiny_size(
    describer: &milan_model::train::Trained,
    lite0: &Path,
    tmp: &Path,
    device: &Device,
) {
    use milan_trainer::applications::analysis::Concept;
    use milan_trainer::applications::editing::{self, CONDITIONS, EditOptions, TEXT_WORDS};
    let (names, stamps) = editing::classes_from(stamp_sets(), 3).unwrap();
    assert_eq!(names, ["discs", "crosses", "bars"]);
    let out = tmp.join("edit");
    let options = EditOptions {
        out: out.clone(),
        classes: 3,
        train: 30,
        probe: 20,
        validation: 10,
        test: 12,
        cue_share: 0.5,
        epochs: 1,
        draws: 3,
        max_units: Some(4),
        words: TEXT_WORDS.map(String::from).to_vec(),
        features: FeatureSource {
            weights: Some(lite0.to_owned()),
            cache: tmp.join("cache"),
            ..FeatureSource::default()
        },
        seed: 0,
        quiet: true,
    };
    let report = editing::run(&options, &names, &stamps, describer, device).unwrap();
    // At most 4 units of each of the 4 layers: those that fired on the probe images.
    assert!((8..=16).contains(&report.units), "{} units", report.units);
    assert!(
        (0.2..=0.8).contains(&report.train_cued),
        "{}",
        report.train_cued
    );
    assert!(out.join("classifier.bpk").is_file());
    let exemplars = Dataset::open(&out.join("exemplars/convnet/spurious_text")).unwrap();
    assert_eq!(exemplars.layers().len(), 4);

    // The text units are exactly the described units whose description mentions the words.
    // Read here rather than with `read_descriptions`, which refuses a file whose descriptions
    // are all empty: a describer trained for one epoch may write nothing for every unit (CI saw
    // it), and then no unit is a text unit.
    let rows: Vec<csv::StringRecord> = csv::Reader::from_path(out.join("descriptions.csv"))
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), report.units, "every unit described");
    let words = Concept::exactly(&options.words);
    let expected: Vec<(String, u32)> = rows
        .iter()
        .filter(|r| !words.mentions(&r[2]).is_empty())
        .map(|r| (r[0].to_owned(), r[1].parse().unwrap()))
        .collect();
    let mut got: Vec<(String, u32)> = report
        .text_units
        .iter()
        .map(|t| (t.layer.clone(), t.unit))
        .collect();
    // Switched off in decreasing order of the validation accuracy without each.
    assert!(
        report
            .text_units
            .windows(2)
            .all(|w| w[0].validation_without >= w[1].validation_without)
    );
    got.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(got, expected);

    let k = report.text_units.len();
    let ns: Vec<usize> = report.curve.iter().map(|p| p.n).collect();
    assert_eq!(ns, editing::steps(k));
    let best = report
        .curve
        .iter()
        .map(|p| p.text_validation)
        .fold(f64::NEG_INFINITY, f64::max);
    let chosen = report.curve.iter().find(|p| p.n == report.chosen).unwrap();
    assert_eq!(chosen.text_validation, best, "the best validation accuracy");
    assert!(
        report
            .curve
            .iter()
            .take_while(|p| p.n < report.chosen)
            .all(|p| p.text_validation < best),
        "the fewest units of equals"
    );
    // Nothing off: every system is the intact network.
    let zero = &report.curve[0];
    assert_eq!(zero.n, 0);
    assert!(zero.random_test.iter().all(|r| *r == zero.text_test));
    for (rows, n) in [(&report.at_chosen, report.chosen), (&report.at_all, k)] {
        assert_eq!(
            rows.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            CONDITIONS
        );
        assert_eq!(rows[0].intact, zero.text_test, "the same clean test images");
        let point = report.curve.iter().find(|p| p.n == n).unwrap();
        assert_eq!(rows[0].text_off, point.text_test);
        assert_eq!(rows[0].random_off, point.random_test);
        for c in rows {
            assert_eq!(c.random_off.len(), 3);
            for a in [c.intact, c.text_off].iter().chain(&c.random_off) {
                // 12 test images: every accuracy is a count of them.
                assert!((a * 12.0 - (a * 12.0).round()).abs() < 1e-9, "{a}");
            }
            if n == 0 {
                assert_eq!(c.text_off, c.intact);
                assert!(c.random_off.iter().all(|r| *r == c.intact));
            }
        }
    }
    assert_eq!(report.effect_appears, report.effect());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("edit.json")).unwrap()).unwrap();
    assert_eq!(json["units"], report.units);
    let md = std::fs::read_to_string(out.join("edit.md")).unwrap();
    assert!(md.contains("| without the cue |"), "{md}");
    assert!(
        milan_trainer::util::plot::font_available(),
        "the plots need a TrueType font: apt-get install fonts-dejavu-core (scripts/test does)"
    );
    assert!(out.join("edit.png").is_file());
    assert!(out.join("edit-conditions.png").is_file());
}
