//! Named groups of model keys and the paper's generalization splits (milan-reference.md §2, §4).
//!
//! A [`Split`] expands into named [`Experiment`]s, each a set of training keys and a set of test
//! keys. Within-network experiments train and test on the same key and hold out neurons instead
//! ([`hold_out`]); every experiment also holds out validation neurons from its training set the same
//! way. Hold-outs are deterministic functions of the seed and the set of neurons, independent of the
//! order in which neurons were listed.

use std::fmt;
use std::str::FromStr;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::model_key::{KeyError, ModelKey, Task, catalog};
use crate::neuron::NeuronId;

/// Fraction of a network's neurons held out for testing in the within-network split.
pub const TEST_FRACTION: f64 = 0.1;
/// Fraction of training neurons held out for validation (early stopping) in every experiment.
pub const VALIDATION_FRACTION: f64 = 0.1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("unknown group {name:?}: groups are {known}, not-<arch>-<dataset>, or a model key")]
    UnknownGroup { name: String, known: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("unknown split {name:?}: splits are {known}")]
    UnknownSplit { name: String, known: String },
    #[error("split {split} has no experiment {name:?}: its experiments are {known}")]
    UnknownExperiment {
        split: Split,
        name: String,
        known: String,
    },
}

/// The named groups of keys (the authors' pretrained decoders are named after them too).
pub const GROUP_NAMES: [&str; 8] = [
    "base",
    "cls",
    "gen",
    "imagenet",
    "places365",
    "alexnet",
    "resnet152",
    "biggan",
];

fn base() -> impl Iterator<Item = ModelKey> {
    catalog()
        .iter()
        .filter(|m| m.task != Task::SelfSupervised)
        .map(|m| m.key())
}

/// The model keys of a named group, in catalog order. Besides the names of milan-reference.md §2,
/// `not-<arch>-<dataset>` is `base` without that key and a bare `arch/dataset` names one key.
pub fn group(name: &str) -> Result<Vec<ModelKey>, SplitError> {
    let keys: Vec<ModelKey> = match name {
        "base" => base().collect(),
        "cls" => catalog()
            .iter()
            .filter(|m| m.task == Task::Classifier)
            .map(|m| m.key())
            .collect(),
        "gen" => catalog()
            .iter()
            .filter(|m| m.task == Task::Generator)
            .map(|m| m.key())
            .collect(),
        "imagenet" | "places365" => catalog()
            .iter()
            .filter(|m| m.dataset == name)
            .map(|m| m.key())
            .collect(),
        "alexnet" | "resnet152" | "biggan" => catalog()
            .iter()
            .filter(|m| m.arch == name)
            .map(|m| m.key())
            .collect(),
        _ if name.starts_with("not-") => {
            let rest = &name["not-".len()..];
            // Arch names hold underscores and digits but no dash, so the last dash separates.
            let excluded = rest
                .rsplit_once('-')
                .and_then(|(arch, dataset)| ModelKey::new(arch, dataset).ok())
                .ok_or_else(|| unknown_group(name))?;
            let excluded_model = excluded.require_known()?;
            if excluded_model.task == Task::SelfSupervised {
                return Err(unknown_group(name));
            }
            base().filter(|k| *k != excluded).collect()
        }
        _ if name.contains('/') => {
            let key: ModelKey = name.parse()?;
            key.require_known()?;
            vec![key]
        }
        _ => return Err(unknown_group(name)),
    };
    Ok(keys)
}

fn unknown_group(name: &str) -> SplitError {
    SplitError::UnknownGroup {
        name: name.to_owned(),
        known: GROUP_NAMES.join(", "),
    }
}

/// The generalization splits of the paper's Table 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    WithinNetwork,
    AcrossArch,
    AcrossDataset,
    AcrossTask,
    LeaveOneOut,
}

/// How an experiment's test neurons are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evaluation {
    /// Train and test keys are the same; [`TEST_FRACTION`] of its neurons are held out by
    /// [`hold_out`].
    HeldOutNeurons,
    /// Every neuron of the test keys is a test neuron; none of them is seen in training.
    HeldOutNetworks,
}

/// One train -> test configuration of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    /// `train->test` in group names, e.g. `alexnet->resnet152` or `alexnet/imagenet`
    /// for a within-network experiment.
    pub name: String,
    pub train: Vec<ModelKey>,
    pub test: Vec<ModelKey>,
    pub evaluation: Evaluation,
}

/// An experiment's neurons, split three ways.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Partition {
    pub train: Vec<NeuronId>,
    /// Held out of training for early stopping: [`VALIDATION_FRACTION`] of the training neurons.
    pub validation: Vec<NeuronId>,
    pub test: Vec<NeuronId>,
}

impl Experiment {
    /// Splits the available neurons the way this experiment needs: test neurons by the
    /// experiment's [`Evaluation`], then a validation hold-out from what is left for training.
    /// Neurons of keys the experiment does not name are ignored. The test hold-out uses `seed`,
    /// the validation hold-out `seed + 1`, so a trial's seed fixes all three sets.
    pub fn partition(&self, neurons: &[NeuronId], seed: u64) -> Partition {
        let of = |keys: &[ModelKey]| -> Vec<NeuronId> {
            neurons
                .iter()
                .filter(|n| keys.contains(&n.key))
                .cloned()
                .collect()
        };
        let (train_all, test) = match self.evaluation {
            Evaluation::HeldOutNeurons => hold_out(&of(&self.train), TEST_FRACTION, seed),
            Evaluation::HeldOutNetworks => {
                let mut test = of(&self.test);
                test.sort();
                test.dedup();
                (of(&self.train), test)
            }
        };
        let (train, validation) = hold_out(&train_all, VALIDATION_FRACTION, seed.wrapping_add(1));
        Partition {
            train,
            validation,
            test,
        }
    }
}

impl Experiment {
    /// The partition around test neurons chosen once for a whole run (the reference draws a
    /// within-network test set once per network, saves it as `<key>-splits.pth` and reuses it in
    /// every trial): training is every neuron of the training keys that is not a test neuron,
    /// and validation is held out of it with `seed + 1`, as [`Experiment::partition`] does. With
    /// the test set `partition(neurons, s)` drew, it returns that partition for seed `s`.
    pub fn partition_with_test(
        &self,
        neurons: &[NeuronId],
        test: &[NeuronId],
        seed: u64,
    ) -> Partition {
        let held: std::collections::HashSet<&NeuronId> = test.iter().collect();
        let train_all: Vec<NeuronId> = neurons
            .iter()
            .filter(|n| self.train.contains(&n.key) && !held.contains(n))
            .cloned()
            .collect();
        let (train, validation) = hold_out(&train_all, VALIDATION_FRACTION, seed.wrapping_add(1));
        let mut test = test.to_vec();
        test.sort();
        test.dedup();
        Partition {
            train,
            validation,
            test,
        }
    }
}

impl Split {
    pub const ALL: [Split; 5] = [
        Split::WithinNetwork,
        Split::AcrossArch,
        Split::AcrossDataset,
        Split::AcrossTask,
        Split::LeaveOneOut,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Split::WithinNetwork => "within-network",
            Split::AcrossArch => "across-arch",
            Split::AcrossDataset => "across-dataset",
            Split::AcrossTask => "across-task",
            Split::LeaveOneOut => "leave-one-out",
        }
    }

    /// Every experiment of the split, in the order of the paper's table.
    pub fn experiments(self) -> Vec<Experiment> {
        let across = |pairs: &[(&str, &str)]| -> Vec<Experiment> {
            pairs
                .iter()
                .map(|(train, test)| Experiment {
                    name: format!("{train}->{test}"),
                    train: group(train).expect("split groups are valid"),
                    test: group(test).expect("split groups are valid"),
                    evaluation: Evaluation::HeldOutNetworks,
                })
                .collect()
        };
        match self {
            Split::WithinNetwork => base()
                .map(|key| Experiment {
                    name: key.to_string(),
                    train: vec![key.clone()],
                    test: vec![key],
                    evaluation: Evaluation::HeldOutNeurons,
                })
                .collect(),
            Split::AcrossArch => across(&[
                ("alexnet", "resnet152"),
                ("resnet152", "alexnet"),
                ("base", "dino_vits8/imagenet"),
            ]),
            Split::AcrossDataset => across(&[("imagenet", "places365"), ("places365", "imagenet")]),
            Split::AcrossTask => across(&[("cls", "gen"), ("gen", "cls")]),
            Split::LeaveOneOut => base()
                .map(|key| {
                    let not = format!("not-{}-{}", key.arch(), key.dataset());
                    Experiment {
                        name: format!("{not}->{key}"),
                        train: group(&not).expect("every base key has a not- group"),
                        test: vec![key],
                        evaluation: Evaluation::HeldOutNetworks,
                    }
                })
                .collect(),
        }
    }

    /// The one experiment called `name` (the `--direction` of `trainer fit`).
    pub fn experiment(self, name: &str) -> Result<Experiment, SplitError> {
        let all = self.experiments();
        let known = all
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        all.iter()
            .find(|e| e.name == name)
            .cloned()
            .ok_or_else(|| SplitError::UnknownExperiment {
                split: self,
                name: name.to_owned(),
                known,
            })
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = SplitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Split::ALL
            .into_iter()
            .find(|split| split.name() == s)
            .ok_or_else(|| SplitError::UnknownSplit {
                name: s.to_owned(),
                known: Split::ALL.map(Split::name).join(", "),
            })
    }
}

/// How many of `n` items a hold-out of `fraction` takes: rounded, and at least one on each side
/// when there are two or more items, so that neither side of a small split is empty.
pub fn hold_out_count(n: usize, fraction: f64) -> usize {
    if n < 2 || fraction <= 0.0 {
        return 0;
    }
    ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
}

/// Splits `neurons` into (kept, held out), holding out [`hold_out_count`] of them.
///
/// Deterministic in `seed` and the *set* of neurons: they are sorted first, then shuffled by
/// [`crate::random::shuffle`] over a ChaCha8 stream (stable across releases, so that published
/// splits can be redone).
/// Both halves come back sorted.
pub fn hold_out(neurons: &[NeuronId], fraction: f64, seed: u64) -> (Vec<NeuronId>, Vec<NeuronId>) {
    let mut all = neurons.to_vec();
    all.sort();
    all.dedup();
    crate::random::shuffle(&mut all, &mut ChaCha8Rng::seed_from_u64(seed));
    let n_out = hold_out_count(all.len(), fraction);
    let mut held = all.split_off(all.len() - n_out);
    all.sort();
    held.sort();
    (all, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_test_set_gives_the_partition_that_drew_it_and_new_validation_sets() {
        let key: ModelKey = "alexnet/imagenet".parse().unwrap();
        let neurons: Vec<NeuronId> = (0..50)
            .map(|u| NeuronId::new(key.clone(), "conv1", u))
            .collect();
        let e = Split::WithinNetwork.experiment("alexnet/imagenet").unwrap();
        let drawn = e.partition(&neurons, 7);
        assert_eq!(e.partition_with_test(&neurons, &drawn.test, 7), drawn);
        let later = e.partition_with_test(&neurons, &drawn.test, 1007);
        assert_eq!(later.test, drawn.test, "the same test units in every trial");
        assert_ne!(later.validation, drawn.validation, "a new validation draw");
        assert!(later.train.iter().all(|n| !drawn.test.contains(n)));
        assert_eq!(
            later.train.len() + later.validation.len() + later.test.len(),
            50
        );
    }

    fn keys(names: &[&str]) -> Vec<ModelKey> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn table(split: Split) -> Vec<(String, Vec<ModelKey>, Vec<ModelKey>)> {
        split
            .experiments()
            .into_iter()
            .map(|e| (e.name, e.train, e.test))
            .collect()
    }

    const BASE: [&str; 6] = [
        "alexnet/imagenet",
        "alexnet/places365",
        "resnet152/imagenet",
        "resnet152/places365",
        "biggan/imagenet",
        "biggan/places365",
    ];

    #[test]
    fn groups_match_the_reference() {
        assert_eq!(group("base").unwrap(), keys(&BASE));
        assert_eq!(
            group("cls").unwrap(),
            keys(&BASE[..4]),
            "cls = alexnet and resnet152 on both datasets"
        );
        assert_eq!(group("gen").unwrap(), keys(&BASE[4..]));
        assert_eq!(
            group("imagenet").unwrap(),
            keys(&[
                "alexnet/imagenet",
                "resnet152/imagenet",
                "biggan/imagenet",
                "dino_vits8/imagenet"
            ])
        );
        assert_eq!(
            group("places365").unwrap(),
            keys(&[
                "alexnet/places365",
                "resnet152/places365",
                "biggan/places365"
            ])
        );
        assert_eq!(
            group("resnet152").unwrap(),
            keys(&["resnet152/imagenet", "resnet152/places365"])
        );
        assert_eq!(
            group("not-biggan-places365").unwrap(),
            keys(&BASE[..5]),
            "not-X is base without X"
        );
        assert_eq!(
            group("dino_vits8/imagenet").unwrap(),
            keys(&["dino_vits8/imagenet"])
        );
    }

    #[test]
    fn unknown_groups_say_what_exists() {
        for bad in ["vgg16", "not-dino_vits8-imagenet", "not-"] {
            let err = group(bad).unwrap_err().to_string();
            assert!(err.contains("base, cls, gen"), "{bad}: {err}");
        }
        for bad in ["vgg16/imagenet", "not-vgg16-imagenet"] {
            let err = group(bad).unwrap_err().to_string();
            assert!(
                err.contains("known keys are alexnet/imagenet"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn within_network_is_each_base_key_alone() {
        let rows = table(Split::WithinNetwork);
        assert_eq!(rows.len(), 6);
        for ((name, train, test), key) in rows.iter().zip(BASE) {
            assert_eq!(name, key);
            assert_eq!(train, &keys(&[key]));
            assert_eq!(test, &keys(&[key]));
        }
        assert!(
            Split::WithinNetwork
                .experiments()
                .iter()
                .all(|e| e.evaluation == Evaluation::HeldOutNeurons)
        );
    }

    #[test]
    fn across_arch_is_the_papers_row() {
        assert_eq!(
            table(Split::AcrossArch),
            vec![
                (
                    "alexnet->resnet152".to_owned(),
                    keys(&["alexnet/imagenet", "alexnet/places365"]),
                    keys(&["resnet152/imagenet", "resnet152/places365"])
                ),
                (
                    "resnet152->alexnet".to_owned(),
                    keys(&["resnet152/imagenet", "resnet152/places365"]),
                    keys(&["alexnet/imagenet", "alexnet/places365"])
                ),
                (
                    "base->dino_vits8/imagenet".to_owned(),
                    keys(&BASE),
                    keys(&["dino_vits8/imagenet"])
                ),
            ]
        );
    }

    #[test]
    fn across_dataset_goes_both_ways() {
        assert_eq!(
            table(Split::AcrossDataset),
            vec![
                (
                    "imagenet->places365".to_owned(),
                    keys(&[
                        "alexnet/imagenet",
                        "resnet152/imagenet",
                        "biggan/imagenet",
                        "dino_vits8/imagenet"
                    ]),
                    keys(&[
                        "alexnet/places365",
                        "resnet152/places365",
                        "biggan/places365"
                    ])
                ),
                (
                    "places365->imagenet".to_owned(),
                    keys(&[
                        "alexnet/places365",
                        "resnet152/places365",
                        "biggan/places365"
                    ]),
                    keys(&[
                        "alexnet/imagenet",
                        "resnet152/imagenet",
                        "biggan/imagenet",
                        "dino_vits8/imagenet"
                    ])
                ),
            ]
        );
    }

    #[test]
    fn across_task_goes_both_ways() {
        assert_eq!(
            table(Split::AcrossTask),
            vec![
                ("cls->gen".to_owned(), keys(&BASE[..4]), keys(&BASE[4..])),
                ("gen->cls".to_owned(), keys(&BASE[4..]), keys(&BASE[..4])),
            ]
        );
    }

    #[test]
    fn leave_one_out_holds_out_each_base_key() {
        let rows = table(Split::LeaveOneOut);
        assert_eq!(rows.len(), 6);
        for (i, (name, train, test)) in rows.iter().enumerate() {
            let key = BASE[i];
            let (arch, dataset) = key.split_once('/').unwrap();
            assert_eq!(name, &format!("not-{arch}-{dataset}->{key}"));
            let mut expected_train = keys(&BASE);
            expected_train.remove(i);
            assert_eq!(train, &expected_train);
            assert_eq!(test, &keys(&[key]));
        }
    }

    #[test]
    fn across_splits_never_test_on_training_keys() {
        for split in Split::ALL {
            for e in split.experiments() {
                if e.evaluation == Evaluation::HeldOutNetworks {
                    assert!(
                        e.test.iter().all(|k| !e.train.contains(k)),
                        "{split} {}",
                        e.name
                    );
                }
            }
        }
    }

    #[test]
    fn splits_parse_by_name_and_experiments_by_direction() {
        for split in Split::ALL {
            assert_eq!(split.name().parse::<Split>().unwrap(), split);
        }
        let err = "across-everything"
            .parse::<Split>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("within-network, across-arch"), "{err}");
        let e = Split::AcrossTask.experiment("gen->cls").unwrap();
        assert_eq!(e.train, keys(&BASE[4..]));
        let err = Split::AcrossTask
            .experiment("cls->vit")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "split across-task has no experiment \"cls->vit\": its experiments are cls->gen, gen->cls"
        );
    }

    fn neurons(n: u32) -> Vec<NeuronId> {
        let key: ModelKey = "alexnet/imagenet".parse().unwrap();
        (0..n)
            .map(|u| NeuronId::new(key.clone(), format!("conv{}", u % 5 + 1), u))
            .collect()
    }

    #[test]
    fn hold_out_is_deterministic_sized_and_disjoint() {
        let all = neurons(200);
        let (kept, held) = hold_out(&all, TEST_FRACTION, 7);
        assert_eq!(held.len(), 20);
        assert_eq!(kept.len(), 180);
        assert!(held.iter().all(|n| !kept.contains(n)));
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(
            hold_out(&reversed, TEST_FRACTION, 7),
            (kept.clone(), held.clone()),
            "input order must not matter"
        );
        let (_, other) = hold_out(&all, TEST_FRACTION, 8);
        assert_ne!(held, other, "another seed gives another split");
    }

    #[test]
    fn hold_out_is_pinned_across_releases() {
        // A published split must be reproducible forever: this pins the exact choice for one seed.
        let (_, held) = hold_out(&neurons(30), 0.1, 0);
        let units: Vec<u32> = held.iter().map(|n| n.unit).collect();
        assert_eq!(units, PINNED_HOLD_OUT);
    }
    const PINNED_HOLD_OUT: [u32; 3] = [7, 8, 18];

    fn corpus(units: u32) -> Vec<NeuronId> {
        catalog()
            .iter()
            .flat_map(|m| (0..units).map(move |u| NeuronId::new(m.key(), m.layers[0].name, u)))
            .collect()
    }

    #[test]
    fn within_network_partitions_one_key_three_ways() {
        let e = Split::WithinNetwork.experiment("biggan/imagenet").unwrap();
        let p = e.partition(&corpus(100), 3);
        assert_eq!(
            (p.train.len(), p.validation.len(), p.test.len()),
            (81, 9, 10)
        );
        let all: Vec<&NeuronId> = p.train.iter().chain(&p.validation).chain(&p.test).collect();
        assert!(all.iter().all(|n| n.key.to_string() == "biggan/imagenet"));
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 100, "the three sets are disjoint");
        assert_eq!(e.partition(&corpus(100), 3), p, "deterministic");
        assert_ne!(e.partition(&corpus(100), 4).test, p.test, "trials differ");
    }

    #[test]
    fn across_partitions_test_every_neuron_of_the_test_keys() {
        let e = Split::AcrossArch.experiment("alexnet->resnet152").unwrap();
        let p = e.partition(&corpus(50), 0);
        assert_eq!(p.test.len(), 100, "both resnet152 keys, whole");
        assert!(p.test.iter().all(|n| n.key.arch() == "resnet152"));
        assert_eq!((p.train.len(), p.validation.len()), (90, 10));
        assert!(
            p.train
                .iter()
                .chain(&p.validation)
                .all(|n| n.key.arch() == "alexnet")
        );
    }

    #[test]
    fn hold_out_counts_keep_both_sides_non_empty() {
        assert_eq!(hold_out_count(0, 0.1), 0);
        assert_eq!(hold_out_count(1, 0.1), 0);
        assert_eq!(hold_out_count(2, 0.1), 1);
        assert_eq!(hold_out_count(9, 0.1), 1);
        assert_eq!(hold_out_count(15, 0.1), 2);
        assert_eq!(hold_out_count(100, 0.1), 10);
        assert_eq!(hold_out_count(10, 0.0), 0);
        assert_eq!(hold_out_count(3, 0.9), 2);
    }
}
