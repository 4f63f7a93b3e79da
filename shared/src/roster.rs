//! A corpus's own roster of networks, for corpora that are not the paper's seven keys.
//!
//! The paper's splits are written in the names of its networks (`alexnet -> resnet152`). A corpus
//! of other networks (the trainer's grounded corpus, a lab's own dissections) states the same
//! structure in `<root>/roster.json`: each key with its task and whether it belongs to `base`, and
//! the train -> test group pairs of the three across-* splits. Within-network and leave-one-out
//! follow from `base` as in the paper.
//!
//! Group names in a roster: `base`, `cls`, `gen`, every arch, every dataset, `not-<arch>-<dataset>`
//! (base without that key) and a full `arch/dataset` key.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model_key::{ModelKey, Task};
use crate::split::{Evaluation, Experiment, Split, SplitError};

/// The file a roster lives in, at the root of a corpus.
pub const FILE: &str = "roster.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterModel {
    pub key: ModelKey,
    pub task: Task,
    /// Part of `base` (trained on in within-network and leave-one-out); `false` for networks
    /// that are only ever tested on (the paper's ViT, a control).
    pub base: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub models: Vec<RosterModel>,
    /// `[train group, test group]` pairs.
    pub across_arch: Vec<[String; 2]>,
    pub across_dataset: Vec<[String; 2]>,
    pub across_task: Vec<[String; 2]>,
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl Roster {
    /// Reads `<root>/roster.json` when there is one; every group it names must resolve.
    pub fn read(root: &Path) -> Result<Option<Roster>, RosterError> {
        let path = root.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(RosterError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let invalid = |message: String| RosterError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let roster: Roster = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("line {}, column {}: {e}", e.line(), e.column())))?;
        roster.validate().map_err(invalid)?;
        Ok(Some(roster))
    }

    /// Writes the roster as `<root>/roster.json` (pretty JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a roster serialises")
    }

    fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for m in &self.models {
            if !seen.insert(&m.key) {
                return Err(format!("{} is listed twice", m.key));
            }
        }
        if !self.models.iter().any(|m| m.base) {
            return Err("no model is in base".to_owned());
        }
        for (split, pairs) in [
            ("across_arch", &self.across_arch),
            ("across_dataset", &self.across_dataset),
            ("across_task", &self.across_task),
        ] {
            for [train, test] in pairs {
                for g in [train, test] {
                    let keys = self
                        .group(g)
                        .map_err(|e| format!("{split}: {train}->{test}: {e}"))?;
                    if keys.is_empty() {
                        return Err(format!("{split}: group {g:?} has no model"));
                    }
                }
            }
        }
        Ok(())
    }

    fn base(&self) -> impl Iterator<Item = &RosterModel> {
        self.models.iter().filter(|m| m.base)
    }

    fn known_groups(&self) -> String {
        let mut names: Vec<String> = vec!["base".into(), "cls".into(), "gen".into()];
        for m in &self.models {
            for n in [m.key.arch(), m.key.dataset()] {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_owned());
                }
            }
        }
        names.join(", ")
    }

    /// The keys of a group, in roster order.
    pub fn group(&self, name: &str) -> Result<Vec<ModelKey>, SplitError> {
        let unknown = || SplitError::UnknownGroup {
            name: name.to_owned(),
            known: self.known_groups(),
        };
        let task = |t: Task| -> Vec<ModelKey> {
            self.base()
                .filter(|m| m.task == t)
                .map(|m| m.key.clone())
                .collect()
        };
        let keys: Vec<ModelKey> = match name {
            "base" => self.base().map(|m| m.key.clone()).collect(),
            "cls" => task(Task::Classifier),
            "gen" => task(Task::Generator),
            _ if name.contains('/') => {
                let key: ModelKey = name.parse()?;
                if !self.models.iter().any(|m| m.key == key) {
                    return Err(unknown());
                }
                vec![key]
            }
            _ if name.starts_with("not-") => {
                let rest = &name["not-".len()..];
                let excluded = self
                    .base()
                    .find(|m| format!("{}-{}", m.key.arch(), m.key.dataset()) == rest)
                    .ok_or_else(unknown)?;
                self.base()
                    .filter(|m| m.key != excluded.key)
                    .map(|m| m.key.clone())
                    .collect()
            }
            _ => {
                let keys: Vec<ModelKey> = self
                    .models
                    .iter()
                    .filter(|m| m.key.arch() == name || m.key.dataset() == name)
                    .map(|m| m.key.clone())
                    .collect();
                if keys.is_empty() {
                    return Err(unknown());
                }
                keys
            }
        };
        Ok(keys)
    }

    /// Every experiment of `split` over this roster, as [`Split::experiments`] does for the paper.
    pub fn experiments(&self, split: Split) -> Vec<Experiment> {
        let across = |pairs: &[[String; 2]]| -> Vec<Experiment> {
            pairs
                .iter()
                .map(|[train, test]| Experiment {
                    name: format!("{train}->{test}"),
                    train: self.group(train).expect("validated when read"),
                    test: self.group(test).expect("validated when read"),
                    evaluation: Evaluation::HeldOutNetworks,
                })
                .collect()
        };
        match split {
            Split::WithinNetwork => self
                .base()
                .map(|m| Experiment {
                    name: m.key.to_string(),
                    train: vec![m.key.clone()],
                    test: vec![m.key.clone()],
                    evaluation: Evaluation::HeldOutNeurons,
                })
                .collect(),
            Split::AcrossArch => across(&self.across_arch),
            Split::AcrossDataset => across(&self.across_dataset),
            Split::AcrossTask => across(&self.across_task),
            Split::LeaveOneOut => self
                .base()
                .map(|m| {
                    let not = format!("not-{}-{}", m.key.arch(), m.key.dataset());
                    Experiment {
                        name: format!("{not}->{}", m.key),
                        train: self.group(&not).expect("every base key has a not- group"),
                        test: vec![m.key.clone()],
                        evaluation: Evaluation::HeldOutNetworks,
                    }
                })
                .collect(),
        }
    }

    /// The one experiment of `split` called `name`.
    pub fn experiment(&self, split: Split, name: &str) -> Result<Experiment, SplitError> {
        let all = self.experiments(split);
        all.iter()
            .find(|e| e.name == name)
            .cloned()
            .ok_or_else(|| SplitError::UnknownExperiment {
                split,
                name: name.to_owned(),
                known: all
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(key: &str, task: Task, base: bool) -> RosterModel {
        RosterModel {
            key: key.parse().unwrap(),
            task,
            base,
        }
    }

    fn roster() -> Roster {
        Roster {
            models: vec![
                model("net/a", Task::Classifier, true),
                model("net/b", Task::Classifier, true),
                model("small/a", Task::Classifier, true),
                model("ae/a", Task::Generator, true),
                model("random/a", Task::Classifier, false),
            ],
            across_arch: vec![
                ["net".into(), "small".into()],
                ["base".into(), "random/a".into()],
            ],
            across_dataset: vec![["a".into(), "b".into()]],
            across_task: vec![["cls".into(), "gen".into()]],
        }
    }

    fn names(keys: Vec<ModelKey>) -> Vec<String> {
        keys.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn groups_resolve_by_arch_dataset_task_and_base() {
        let r = roster();
        assert_eq!(names(r.group("net").unwrap()), ["net/a", "net/b"]);
        assert_eq!(
            names(r.group("a").unwrap()),
            ["net/a", "small/a", "ae/a", "random/a"]
        );
        assert_eq!(
            names(r.group("cls").unwrap()),
            ["net/a", "net/b", "small/a"],
            "tasks are drawn from base: the control is not a classifier to train on"
        );
        assert_eq!(names(r.group("gen").unwrap()), ["ae/a"]);
        assert_eq!(
            names(r.group("not-net-b").unwrap()),
            ["net/a", "small/a", "ae/a"]
        );
        assert!(r.group("not-random-a").is_err(), "only base keys have not-");
        let err = r.group("vgg").unwrap_err().to_string();
        assert!(err.contains("base, cls, gen, net, a, b, small"), "{err}");
    }

    #[test]
    fn splits_follow_the_roster() {
        let r = roster();
        let within = r.experiments(Split::WithinNetwork);
        assert_eq!(within.len(), 4);
        assert!(within.iter().all(|e| e.train == e.test));
        let arch = r.experiments(Split::AcrossArch);
        assert_eq!(arch[0].name, "net->small");
        assert_eq!(names(arch[1].test.clone()), ["random/a"]);
        let loo = r.experiments(Split::LeaveOneOut);
        assert_eq!(loo[0].name, "not-net-a->net/a");
        assert_eq!(names(loo[0].train.clone()), ["net/b", "small/a", "ae/a"]);
        assert!(r.experiment(Split::AcrossTask, "gen->cls").is_err());
    }

    #[test]
    fn a_roster_file_round_trips_and_bad_groups_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Roster::read(dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join(FILE), roster().to_json()).unwrap();
        assert_eq!(Roster::read(dir.path()).unwrap().unwrap(), roster());
        let mut bad = roster();
        bad.across_task = vec![["cls".into(), "vit".into()]];
        std::fs::write(dir.path().join(FILE), bad.to_json()).unwrap();
        let err = Roster::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("roster.json") && err.contains("cls->vit"),
            "{err}"
        );
        std::fs::write(dir.path().join(FILE), "{\"models\": [").unwrap();
        let err = Roster::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
