//! The synthetic corpus: deterministic, readable by the shared reader, faithful masks, three
//! distinct annotators, and concept distributions that differ by key the way the splits need.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use milan_shared::cleaning::clean;
use milan_shared::milannotations::Dataset;
use milan_shared::model_key::catalog;
use milan_shared::split::{Evaluation, Split, TEST_FRACTION, hold_out};
use milan_shared::tokenize::tokenize;
use milan_shared::{ModelKey, NeuronId};
use milan_synth::concept::{Concept, Kind};
use milan_synth::profile::{expected_kinds, profile};
use milan_synth::{CONCEPTS_FILE, SynthConfig, generate, sample_unit};

fn small(seed: u64) -> SynthConfig {
    SynthConfig {
        units_per_layer: 3,
        image_size: 24,
        seed,
        ..SynthConfig::default()
    }
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_same_seed_writes_the_same_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(a.path(), &small(5), &|| {}).unwrap();
    generate(b.path(), &small(5), &|| {}).unwrap();
    generate(c.path(), &small(6), &|| {}).unwrap();
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(fa.len(), fb.len());
    assert!(fa == fb, "same seed, different bytes");
    let annotations = "alexnet/imagenet/annotations.csv";
    assert_ne!(
        fa[annotations], fc[annotations],
        "another seed, other descriptions"
    );
    assert_ne!(
        fa["alexnet/imagenet/conv1/images.npy"],
        fc["alexnet/imagenet/conv1/images.npy"]
    );
}

#[test]
fn a_unit_does_not_depend_on_what_else_is_generated() {
    let key: ModelKey = "resnet152/places365".parse().unwrap();
    let alone = sample_unit(&key, "6", 3, 5, 2, 24, 9);
    let tmp = tempfile::tempdir().unwrap();
    let config = SynthConfig {
        units_per_layer: 5,
        image_size: 24,
        seed: 9,
        keys: vec![key.clone()],
    };
    generate(tmp.path(), &config, &|| {}).unwrap();
    let dataset = Dataset::open(&tmp.path().join("resnet152/places365")).unwrap();
    let layer = dataset.layer("6").unwrap();
    let exemplars = layer.exemplars(2);
    assert_eq!(
        exemplars.images.unwrap().as_slice().unwrap(),
        alone.images.as_slice()
    );
    assert_eq!(exemplars.masks.as_slice().unwrap(), alone.masks.as_slice());
}

#[test]
fn every_key_reads_back_with_real_layer_names_and_three_descriptions() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = generate(tmp.path(), &small(1), &|| {}).unwrap();
    assert_eq!(summary.keys.len(), 7);
    for model in catalog() {
        let dataset = Dataset::open(&tmp.path().join(model.arch).join(model.dataset)).unwrap();
        let names: Vec<&str> = dataset.layers().iter().map(|l| l.name()).collect();
        let expected: Vec<&str> = model.layers.iter().map(|l| l.name).collect();
        assert_eq!(names, expected, "{}", model.key());
        let units: usize = dataset.layers().iter().map(|l| l.units()).sum();
        assert_eq!(units, 3 * model.layers.len());
        assert_eq!(dataset.annotated().len(), units, "every unit is described");
        assert!(dataset.skipped().is_empty());
        for layer in dataset.layers() {
            let shape = layer.shape();
            assert_eq!((shape.k, shape.height, shape.width), (15, 24, 24));
            for e in layer.iter() {
                assert!(e.images.is_some());
                assert!(e.masks.iter().all(|&m| m <= 1));
            }
        }
        let concepts = fs::read_to_string(dataset.dir().join(CONCEPTS_FILE)).unwrap();
        assert_eq!(concepts.lines().count(), units + 1);
    }
}

#[test]
fn units_per_layer_is_capped_at_the_real_width() {
    let key: ModelKey = "dino_vits8/imagenet".parse().unwrap();
    let layers = milan_synth::layers_of(&key, 500);
    assert!(
        layers.iter().all(|(_, n)| *n == 100),
        "ViT layers have 100 annotated units"
    );
}

#[test]
fn bad_configs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (config, expected) in [
        (
            SynthConfig {
                units_per_layer: 0,
                ..small(0)
            },
            "--units-per-layer must be at least 1",
        ),
        (
            SynthConfig {
                image_size: 4,
                ..small(0)
            },
            "--image-size 4 is out of range",
        ),
    ] {
        let err = generate(tmp.path(), &config, &|| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// Masks sit on the concept: for colour concepts, the concept's colour is far more common inside
/// the mask than outside it.
#[test]
fn masks_cover_the_concept() {
    let mut checked = 0;
    for model in catalog() {
        let key = model.key();
        for (i, layer) in model.layers.iter().enumerate() {
            for unit in 0..6 {
                let s = sample_unit(&key, layer.name, i, model.layers.len(), unit, 48, 3);
                let plane = 48 * 48;
                for j in 0..15 {
                    let mask = &s.masks[j * plane..(j + 1) * plane];
                    let on = mask.iter().filter(|&&m| m == 1).count();
                    assert!(on > 0, "{key} {} {unit}: empty mask", layer.name);
                    assert!(
                        on < plane * 7 / 10,
                        "{key} {} {unit}: mask covers {on} of {plane}",
                        layer.name
                    );
                }
                let Concept::Colour(colour) = s.concept else {
                    continue;
                };
                let target = colour.rgb();
                let (mut inside, mut inside_n, mut outside, mut outside_n) = (0, 0, 0, 0);
                for j in 0..15 {
                    for p in 0..plane {
                        let rgb: Vec<i32> = (0..3)
                            .map(|c| i32::from(s.images[(j * 3 + c) * plane + p]))
                            .collect();
                        let near = rgb
                            .iter()
                            .zip(target)
                            .all(|(v, t)| (v - i32::from(t)).abs() <= 12);
                        if s.masks[j * plane + p] == 1 {
                            inside += usize::from(near);
                            inside_n += 1;
                        } else {
                            outside += usize::from(near);
                            outside_n += 1;
                        }
                    }
                }
                let (fin, fout) = (
                    inside as f64 / inside_n as f64,
                    outside as f64 / outside_n as f64,
                );
                assert!(
                    fin > 0.3 && fin > 10.0 * fout,
                    "{key} {} {unit} {}: {fin:.3} of the mask and {fout:.4} outside it is the colour",
                    layer.name,
                    s.concept
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} colour units checked");
}

#[test]
fn three_distinct_annotators_describe_the_same_concept() {
    let key: ModelKey = "alexnet/places365".parse().unwrap();
    let mut noisy = 0;
    for unit in 0..60 {
        let s = sample_unit(&key, "conv5", 4, 5, unit, 16, 11);
        let workers: BTreeSet<usize> = s.descriptions.iter().map(|(w, _)| *w).collect();
        assert_eq!(workers.len(), 3, "unit {unit}: workers {workers:?}");
        for (_, text) in &s.descriptions {
            assert!(!text.trim().is_empty());
            if text != &clean(text) {
                noisy += 1;
            }
        }
    }
    // The habits show: many raw descriptions carry boilerplate, capitals or full stops.
    assert!(
        noisy > 40,
        "only {noisy} of 180 descriptions needed cleaning"
    );
}

fn mean_complexity(key: &ModelKey, layer_index: usize, layers: usize) -> f64 {
    profile(key, layer_index, layers).mean_complexity()
}

#[test]
fn depth_shapes_concepts_and_generators_run_the_other_way() {
    for model in catalog() {
        let key = model.key();
        let n = model.layers.len();
        let (first, last) = (mean_complexity(&key, 0, n), mean_complexity(&key, n - 1, n));
        match model.task {
            milan_shared::Task::Generator => assert!(first > last + 1.0, "{key}: {first} {last}"),
            _ => assert!(last > first + 1.0, "{key}: {first} {last}"),
        }
    }
    // Sampled, not just expected: late classifier layers describe objects and relations.
    let key: ModelKey = "resnet152/imagenet".parse().unwrap();
    let kinds = |layer: &str, i: usize| -> f64 {
        (0..80)
            .map(|u| {
                sample_unit(&key, layer, i, 5, u, 16, 2)
                    .concept
                    .kind()
                    .complexity() as f64
            })
            .sum::<f64>()
            / 80.0
    };
    assert!(kinds("layer4", 4) > kinds("conv1", 0) + 1.0);
}

fn total_variation(a: &[f64; 7], b: &[f64; 7]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

fn mixture(keys: &[ModelKey]) -> [f64; 7] {
    let mut total = [0.0; 7];
    for key in keys {
        for (t, p) in total.iter_mut().zip(expected_kinds(key, 20)) {
            *t += p / keys.len() as f64;
        }
    }
    total
}

/// The test keys of every across-network experiment draw concepts from another distribution than
/// its training keys; within-network experiments train and test on one distribution.
#[test]
fn across_splits_shift_the_concept_distribution() {
    for split in [
        Split::AcrossArch,
        Split::AcrossDataset,
        Split::AcrossTask,
        Split::LeaveOneOut,
    ] {
        for e in split.experiments() {
            let distance = total_variation(&mixture(&e.train), &mixture(&e.test));
            let lexical = vocabulary_shift(&e.train, &e.test);
            println!(
                "{split} {}: kind distance {distance:.3}, unseen words {lexical:.3}",
                e.name
            );
            assert!(
                distance > 0.03 || lexical > 0.05,
                "{split} {}: kind distance {distance:.3}, out-of-vocabulary {lexical:.3}",
                e.name
            );
        }
    }
    for e in Split::WithinNetwork.experiments() {
        assert_eq!(e.evaluation, Evaluation::HeldOutNeurons);
        assert_eq!(total_variation(&mixture(&e.train), &mixture(&e.test)), 0.0);
    }
}

fn description_tokens(
    key: &ModelKey,
    units: std::ops::Range<usize>,
) -> Vec<(NeuronId, Vec<String>)> {
    let model = key.require_known().unwrap();
    let mut out = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        for unit in units.clone() {
            let s = sample_unit(key, layer.name, i, model.layers.len(), unit, 16, 4);
            let tokens = s
                .descriptions
                .iter()
                .flat_map(|(_, t)| tokenize(&clean(t)))
                .collect();
            out.push((NeuronId::new(key.clone(), layer.name, unit as u32), tokens));
        }
    }
    out
}

/// Share of test tokens never seen in training descriptions.
fn oov_rate(train: &[(NeuronId, Vec<String>)], test: &[(NeuronId, Vec<String>)]) -> f64 {
    let vocabulary: BTreeSet<&String> = train.iter().flat_map(|(_, t)| t).collect();
    let (mut unseen, mut total) = (0, 0);
    for (_, tokens) in test {
        for t in tokens {
            total += 1;
            unseen += usize::from(!vocabulary.contains(t));
        }
    }
    unseen as f64 / total.max(1) as f64
}

fn vocabulary_shift(train: &[ModelKey], test: &[ModelKey]) -> f64 {
    let train: Vec<_> = train
        .iter()
        .flat_map(|k| description_tokens(k, 0..8))
        .collect();
    let test: Vec<_> = test
        .iter()
        .flat_map(|k| description_tokens(k, 0..8))
        .collect();
    oov_rate(&train, &test)
}

/// A captioner meets more unseen words across datasets than within one network.
#[test]
fn across_dataset_meets_more_unseen_words_than_within_network() {
    let mut within = Vec::new();
    for key in milan_shared::split::group("base").unwrap() {
        let all = description_tokens(&key, 0..20);
        let ids: Vec<NeuronId> = all.iter().map(|(n, _)| n.clone()).collect();
        let (_, held) = hold_out(&ids, TEST_FRACTION, 0);
        let (test, train): (Vec<_>, Vec<_>) = all.into_iter().partition(|(n, _)| held.contains(n));
        within.push(oov_rate(&train, &test));
    }
    let within_max = within.iter().copied().fold(0.0, f64::max);
    for e in Split::AcrossDataset.experiments() {
        let across = vocabulary_shift(&e.train, &e.test);
        println!(
            "{}: {across:.3} unseen words; within-network {within:.3?}",
            e.name
        );
        assert!(
            across > within_max,
            "{}: {across:.3} unseen, within-network at most {within_max:.3}",
            e.name
        );
    }
    let kinds_of_gen: BTreeSet<Kind> = milan_shared::split::group("gen")
        .unwrap()
        .iter()
        .flat_map(description_kinds)
        .collect();
    assert!(kinds_of_gen.contains(&Kind::TexturedShape));
}

fn description_kinds(key: &ModelKey) -> Vec<Kind> {
    let model = key.require_known().unwrap();
    (0..model.layers.len())
        .flat_map(|i| {
            (0..5).map(move |u| {
                sample_unit(key, model.layers[i].name, i, model.layers.len(), u, 16, 0)
                    .concept
                    .kind()
            })
        })
        .collect()
}
