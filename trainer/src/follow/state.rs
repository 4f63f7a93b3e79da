//! What the follower knows, persisted in `RUNDIR/follow.json` after every change: the feed's
//! cursor, every description seen (by assignment) with whether it is approved, the round in
//! progress and how many neurons the last finished round trained on.
//!
//! Applying an event is idempotent and approval is final (the annotator rejects only submitted
//! work), so a page read twice, events repeated in the feed, or a re-read overlap after a restart
//! change nothing.

use milan_shared::atomic;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use milan_shared::NeuronId;
use serde::{Deserialize, Serialize};

/// A neuron as the feed names it: (model key, layer, unit).
pub type NeuronKey = (String, String, u32);

/// Descriptions a neuron needs to count as annotated.
pub const DESCRIPTIONS_PER_NEURON: usize = 3;

/// One line of the annotator's descriptions feed (`GET /api/v1/projects/{p}/descriptions`).
pub use milan_shared::wire::FeedEvent;

/// Where a description stands. Approved and rejected are final: the annotator rejects only
/// submitted work, and a rejected assignment's slot reopens as a new assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Submitted,
    Approved,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub model: String,
    pub layer: String,
    pub unit: u32,
    pub worker: String,
    pub cleaned: String,
    pub status: Status,
}

/// A round that has started: the neurons it trains and evaluates on, fixed when it starts so that
/// a restart redoes the same round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundPlan {
    pub index: usize,
    pub neurons: Vec<NeuronId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowState {
    pub annotator: String,
    pub project: String,
    /// The feed's cursor: every event up to it has been applied.
    pub cursor: i64,
    /// Assignment id -> its description.
    pub descriptions: BTreeMap<String, Entry>,
    /// Rounds finished.
    pub rounds_done: usize,
    /// Annotated neurons the last finished round trained on.
    pub trained_on: usize,
    pub round: Option<RoundPlan>,
}

impl FollowState {
    pub fn new(annotator: &str, project: &str) -> Self {
        FollowState {
            annotator: annotator.to_owned(),
            project: project.to_owned(),
            ..FollowState::default()
        }
    }

    /// The state in `path`, or a new one when there is none; refuses a state that follows
    /// another project (or another annotator).
    pub fn load_or_new(path: &Path, annotator: &str, project: &str) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FollowState::new(annotator, project));
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: FollowState = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a follow state", path.display()))?;
        if state.project != project || state.annotator != annotator {
            bail!(
                "{} follows project {:?} of {}, not {project:?} of {annotator}; use another --out",
                path.display(),
                state.project,
                state.annotator
            );
        }
        Ok(state)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        atomic::write(path, &serde_json::to_vec_pretty(self)?)
    }

    /// Applies one feed event; true when it changed anything. Rejected descriptions stay as
    /// tombstones, so that replaying their submission changes nothing.
    pub fn apply(&mut self, e: &FeedEvent) -> bool {
        let target = match e.event.as_str() {
            "submitted" => Status::Submitted,
            "approved" | "auto_approved" => Status::Approved,
            "rejected" => Status::Rejected,
            other => {
                tracing::warn!("ignoring feed event of unknown kind {other:?}");
                return false;
            }
        };
        let current = self.descriptions.get(&e.assignment_id).map(|c| c.status);
        let moves = match current {
            None => true,
            Some(Status::Submitted) => target != Status::Submitted,
            Some(Status::Approved | Status::Rejected) => false,
        };
        if moves {
            self.descriptions.insert(
                e.assignment_id.clone(),
                Entry {
                    model: e.model.clone(),
                    layer: e.layer.clone(),
                    unit: e.unit,
                    worker: e.worker.clone(),
                    cleaned: e.cleaned.clone(),
                    status: target,
                },
            );
        }
        moves
    }

    /// Neurons with at least [`DESCRIPTIONS_PER_NEURON`] approved descriptions, each with its
    /// first three by assignment id, ordered by worker then text: the same annotations give the
    /// same training data whatever order they arrived in.
    pub fn annotated(&self) -> BTreeMap<NeuronKey, Vec<String>> {
        let mut by_neuron: BTreeMap<NeuronKey, Vec<(&str, &str)>> = BTreeMap::new();
        for entry in self
            .descriptions
            .values()
            .filter(|e| e.status == Status::Approved)
        {
            by_neuron
                .entry((entry.model.clone(), entry.layer.clone(), entry.unit))
                .or_default()
                .push((entry.worker.as_str(), entry.cleaned.as_str()));
        }
        by_neuron
            .into_iter()
            .filter(|(_, d)| d.len() >= DESCRIPTIONS_PER_NEURON)
            .map(|(k, mut d)| {
                d.truncate(DESCRIPTIONS_PER_NEURON);
                d.sort_unstable();
                (k, d.into_iter().map(|(_, t)| t.to_owned()).collect())
            })
            .collect()
    }

    /// Descriptions waiting for review.
    pub fn pending(&self) -> usize {
        self.descriptions
            .values()
            .filter(|e| e.status == Status::Submitted)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(cursor: i64, kind: &str, assignment: &str, unit: u32) -> FeedEvent {
        FeedEvent {
            cursor,
            event: kind.into(),
            model: "alexnet/imagenet".into(),
            layer: "conv1".into(),
            unit,
            assignment_id: assignment.into(),
            worker: format!("w-{assignment}"),
            state: kind.replace("auto_approved", "approved"),
            description: format!("Text {assignment}."),
            cleaned: format!("text {assignment}"),
            created_at: cursor,
        }
    }

    #[test]
    fn duplicates_and_replays_change_nothing_and_rejections_retract() {
        let feed = [
            event(1, "submitted", "a", 0),
            event(2, "submitted", "b", 0),
            event(3, "approved", "a", 0),
            event(4, "submitted", "c", 0),
            event(5, "rejected", "c", 0),
            event(6, "auto_approved", "b", 0),
            event(7, "submitted", "d", 0),
            event(8, "approved", "d", 0),
        ];
        let mut once = FollowState::new("http://x", "p");
        for e in &feed {
            once.apply(e);
        }
        let annotated = once.annotated();
        assert_eq!(annotated.len(), 1);
        assert_eq!(
            annotated.values().next().unwrap(),
            &["text a", "text b", "text d"]
        );
        assert_eq!(once.descriptions["c"].status, Status::Rejected);
        assert_eq!(once.pending(), 0);
        // Every event twice, and the whole feed replayed from an earlier cursor: same state.
        let mut twice = FollowState::new("http://x", "p");
        for e in feed.iter().flat_map(|e| [e, e]) {
            twice.apply(e);
        }
        for e in &feed[2..] {
            assert!(!twice.apply(e), "replaying {e:?} changed the state");
        }
        assert_eq!(once, twice);
        // A rejection never retracts approved work; an old `submitted` never un-approves.
        assert!(!twice.apply(&event(9, "rejected", "a", 0)));
        assert!(!twice.apply(&event(1, "submitted", "a", 0)));
        assert_eq!(twice.descriptions["a"].status, Status::Approved);
    }

    #[test]
    fn a_state_of_another_project_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("follow.json");
        FollowState::new("http://x", "p").save(&path).unwrap();
        assert!(FollowState::load_or_new(&path, "http://x", "p").is_ok());
        let err = FollowState::load_or_new(&path, "http://x", "q")
            .unwrap_err()
            .to_string();
        assert!(err.contains("follows project \"p\""), "{err}");
    }
}
