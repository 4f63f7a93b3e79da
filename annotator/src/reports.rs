//! Read models: what the pages and the API show about projects, work and workers, computed from
//! the database in one place. Handlers render these; they never query or count themselves. Every
//! type here is plain data (`Serialize`) so that a template or a JSON answer can use it as is.
//!
//! Nothing here changes state: the engine (`engine`) owns every write.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::db::Database;
use crate::db::queries::{self as q, ProjectRow};
use crate::domain::{Millis, State};
use crate::engine::{EngineError, Result};
use crate::import::StoredExemplar;
use milan_shared::wire::FeedEvent;

/// The read side of the annotator.
#[derive(Debug, Clone)]
pub struct Reports {
    db: Database,
}

// ------------------------------------------------------------------ progress

/// Progress of a project's sets of one model key and layer (or, as [`Totals`], of all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub model: String,
    pub layer: String,
    pub sets: i64,
    /// Assignments needed in all: sets x assignments per set.
    pub needed: i64,
    pub approved: i64,
    /// Accepted or submitted, not yet approved (`leased + awaiting_review`).
    pub in_progress: i64,
    /// Submitted and waiting for the requester's review.
    pub awaiting_review: i64,
    /// Accepted by a worker who has not submitted yet.
    pub leased: i64,
    /// Slots nobody holds.
    pub left: i64,
}

impl Progress {
    /// Approved share of what is needed, in whole percent.
    pub fn percent(&self) -> i64 {
        if self.needed > 0 {
            self.approved * 100 / self.needed
        } else {
            0
        }
    }

    fn add(&mut self, other: &Progress) {
        self.sets += other.sets;
        self.needed += other.needed;
        self.approved += other.approved;
        self.in_progress += other.in_progress;
        self.awaiting_review += other.awaiting_review;
        self.leased += other.leased;
        self.left += other.left;
    }
}

/// A project's progress summed over its layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    #[serde(flatten)]
    pub sum: Progress,
    pub percent: i64,
}

impl Totals {
    pub fn of(rows: &[Progress]) -> Totals {
        let mut sum = Progress::default();
        for row in rows {
            sum.add(row);
        }
        Totals {
            percent: sum.percent(),
            sum,
        }
    }
}

// ------------------------------------------------------------------ throughput

/// One bar of the submissions chart, in the chart's own coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    pub count: i64,
    /// When the bar's interval starts, as "3 h ago".
    pub from: String,
}

/// A labelled tick of an axis, in the chart's coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tick {
    pub at: i64,
    pub label: String,
}

/// Submissions over time as a bar chart with both axes labelled (drawn by the template as SVG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Throughput {
    pub bars: Vec<Bar>,
    /// Plot area inside the margins for the axis labels.
    pub left: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
    pub width: i64,
    pub height: i64,
    /// "minute", "5 minutes", ...: what one bar counts.
    pub bucket: String,
    pub max: i64,
    pub total: usize,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
}

/// "now", "45 min ago", "3 h ago", "2 d ago".
pub fn ago(ms: Millis) -> String {
    let min = ms / 60_000;
    if min <= 0 {
        "now".to_owned()
    } else if min < 60 {
        format!("{min} min ago")
    } else if min < 48 * 60 {
        format!("{} h ago", min / 60)
    } else {
        format!("{} d ago", min / (24 * 60))
    }
}

impl Throughput {
    pub const BARS: i64 = 24;

    /// The chart of these submission times, up to `now`: 24 bars of the smallest interval (a
    /// minute up to a day) that covers the first submission.
    pub fn of(submitted: &[Millis], now: Millis) -> Throughput {
        const STEPS: [(Millis, &str); 6] = [
            (60_000, "minute"),
            (5 * 60_000, "5 minutes"),
            (15 * 60_000, "15 minutes"),
            (3_600_000, "hour"),
            (6 * 3_600_000, "6 hours"),
            (86_400_000, "day"),
        ];
        let bars_n = Self::BARS;
        let first = submitted.iter().copied().min().unwrap_or(now);
        let span = (now - first).max(1);
        let (bucket, label) = STEPS
            .iter()
            .copied()
            .find(|(b, _)| b * bars_n >= span)
            .unwrap_or(STEPS[STEPS.len() - 1]);
        let start = now - bucket * bars_n;
        let mut counts = vec![0i64; bars_n as usize];
        for t in submitted {
            if *t >= start {
                let i = (((t - start) / bucket) as usize).min(bars_n as usize - 1);
                counts[i] += 1;
            }
        }
        let max = counts.iter().copied().max().unwrap_or(0).max(1);
        let (width, height) = (640i64, 170i64);
        // Margins leave room for the tick labels: counts on the left, "now" centred on the right edge.
        let (left, top, right, bottom) = (40i64, 8i64, width - 24, height - 26);
        let bar_w = (right - left) / bars_n;
        let plot_h = bottom - top;
        let bars = counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let h = c * plot_h / max;
                Bar {
                    x: left + i as i64 * bar_w + 1,
                    y: bottom - h,
                    w: bar_w - 2,
                    h,
                    count: *c,
                    from: ago(now - (start + i as i64 * bucket)),
                }
            })
            .collect();
        let x_ticks = (0..=4)
            .map(|k| Tick {
                at: left + k * (right - left) / 4,
                label: ago(bucket * bars_n * (4 - k) / 4),
            })
            .collect();
        let mut y_values = vec![0, max];
        if max >= 4 {
            y_values.insert(1, max / 2);
        }
        let y_ticks = y_values
            .into_iter()
            .map(|v| Tick {
                at: bottom - v * plot_h / max,
                label: v.to_string(),
            })
            .collect();
        Throughput {
            bars,
            left,
            top,
            right,
            bottom,
            width,
            height,
            bucket: label.to_owned(),
            max,
            total: submitted.len(),
            x_ticks,
            y_ticks,
        }
    }
}

/// When the remaining work will be done at the last hour's rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Eta {
    Done,
    /// Nothing submitted in the last hour: no rate to go by.
    Stalled,
    Hours {
        per_hour: i64,
        hours: String,
    },
}

impl Eta {
    pub fn of(submitted: &[Millis], remaining: i64, now: Millis) -> Eta {
        let window = 3_600_000;
        if remaining <= 0 {
            return Eta::Done;
        }
        let recent = submitted.iter().filter(|t| **t >= now - window).count() as i64;
        if recent == 0 {
            return Eta::Stalled;
        }
        Eta::Hours {
            per_hour: recent,
            hours: format!("{:.1}", remaining as f64 / recent as f64),
        }
    }
}

/// The requester's dashboard of one project.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub progress: Vec<Progress>,
    pub totals: Totals,
    pub chart: Throughput,
    pub eta: Eta,
}

// ------------------------------------------------------------------ workers

/// What a worker sees of their own work (MTurk's dashboard: pending, approved, rejected, paid).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerSummary {
    /// Submitted, not reviewed yet.
    pub pending: i64,
    pub approved: i64,
    pub rejected: i64,
    /// Submitted in all (pending + approved + rejected).
    pub done: i64,
    /// Rewards and bonuses paid, in cents.
    pub earned_cents: i64,
}

/// Rejected work and the requester's feedback, as the worker sees it (MTurk shows the
/// RequesterFeedback the same way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub text: String,
    pub feedback: String,
    pub at: Millis,
}

/// One row of the requester's worker table.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerLine {
    pub id: String,
    pub done: i64,
    pub pending: i64,
    pub approved: i64,
    pub rejected: i64,
    /// Approved share of reviewed work, in percent; `None` before any review.
    pub approval_rate: Option<i64>,
    /// Median seconds from accept to submit.
    pub median_seconds: Option<i64>,
    pub reward_cents: i64,
    pub bonus_cents: i64,
    pub blocked: bool,
    pub block_reason: Option<String>,
    pub unverified: i64,
    pub sessions: i64,
    /// When the worker last submitted in this project.
    pub last_submitted: Option<Millis>,
}

/// Which workers the table shows, and in what order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerQuery {
    /// Part of the worker id, any case.
    pub search: String,
    pub show: WorkerShow,
    pub sort: WorkerSort,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WorkerShow {
    /// Everyone with work in the project.
    #[default]
    All,
    /// Workers with work waiting for review.
    Pending,
    /// Workers who submitted in the last 7 days.
    Recent,
    Blocked,
}

impl WorkerShow {
    pub fn parse(s: &str) -> Option<WorkerShow> {
        Some(match s {
            "" | "all" => WorkerShow::All,
            "pending" => WorkerShow::Pending,
            "recent" => WorkerShow::Recent,
            "blocked" => WorkerShow::Blocked,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WorkerSort {
    /// Most work first.
    #[default]
    Done,
    /// Most work waiting for review first.
    Pending,
    /// Lowest approval rate first (the ones to look at).
    ApprovalRate,
    /// Fastest median first (the ones who may not be reading).
    Median,
    /// Most recent submission first.
    Recent,
    Id,
}

impl WorkerSort {
    pub fn parse(s: &str) -> Option<WorkerSort> {
        Some(match s {
            "" | "done" => WorkerSort::Done,
            "pending" => WorkerSort::Pending,
            "approval" => WorkerSort::ApprovalRate,
            "median" => WorkerSort::Median,
            "recent" => WorkerSort::Recent,
            "id" => WorkerSort::Id,
            _ => return None,
        })
    }
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

// ------------------------------------------------------------------ review

pub use milan_metrics::bleu::agreement;

/// One description on the review page.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewItem {
    pub id: String,
    pub worker: String,
    pub state: String,
    pub text: String,
    /// Its agreement with the set's other descriptions; `None` when it is alone.
    pub agreement: Option<f64>,
    pub seconds: Option<i64>,
    pub verified: bool,
    pub flag: Option<String>,
}

/// The trainer's latest description of a set under review.
#[derive(Debug, Clone, Serialize)]
pub struct ModelText {
    pub round: i32,
    pub system: String,
    pub text: String,
}

/// A set with work waiting for review.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewSet {
    pub neuron: String,
    pub images: Vec<String>,
    /// Mean agreement of its (not rejected) descriptions; `None` with fewer than two.
    pub agreement: Option<f64>,
    /// Two or more descriptions that barely share a word (mean BLEU under 5).
    pub low: bool,
    pub model: Option<ModelText>,
    pub work: Vec<ReviewItem>,
}

// ------------------------------------------------------------------ sets

/// Which sets the set browser looks for: any of model, layer and unit may be left open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetQuery {
    pub model: Option<String>,
    pub layer: Option<String>,
    pub unit: Option<i32>,
}

/// A set found by the browser, with its counts.
#[derive(Debug, Clone, Serialize)]
pub struct SetLine {
    pub model: String,
    pub layer: String,
    pub unit: i32,
    /// Live, submitted and approved assignments (the slots held).
    pub active: i32,
    pub approved: i32,
    pub priority: f64,
}

/// One assignment of a set, as its history page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AssignmentLine {
    pub id: String,
    pub worker: String,
    pub state: String,
    pub accepted_at: Millis,
    pub expires_at: Millis,
    pub submitted_at: Option<Millis>,
    pub reviewed_at: Option<Millis>,
    pub description: Option<String>,
    pub feedback: Option<String>,
    pub verified: bool,
}

/// One event of a set's log.
#[derive(Debug, Clone, Serialize)]
pub struct EventLine {
    pub at: Millis,
    pub kind: String,
    pub worker: Option<String>,
    /// The assignment the event is about (its public id), when it is about one.
    pub assignment: Option<String>,
    pub detail: String,
}

/// A set with everything that happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct SetHistory {
    pub set: SetLine,
    pub images: Vec<String>,
    pub assignments: Vec<AssignmentLine>,
    pub events: Vec<EventLine>,
}

impl SetLine {
    fn of(set: &q::SetRow) -> SetLine {
        SetLine {
            model: set.model.clone(),
            layer: set.layer.clone(),
            unit: set.unit,
            active: set.active_count,
            approved: set.approved_count,
            priority: set.priority,
        }
    }
}

// ------------------------------------------------------------------ queries

impl Reports {
    pub fn new(db: Database) -> Self {
        Reports { db }
    }

    fn project(&self, name: &str) -> Result<ProjectRow> {
        self.db.read(|c| {
            q::project_by_name(c, name)?
                .ok_or_else(|| EngineError::NotFound(format!("no project {name:?}")))
        })
    }

    /// Progress by model and layer, in the order the sets were imported.
    pub fn progress(&self, project: &str) -> Result<Vec<Progress>> {
        self.progress_of(&self.project(project)?)
    }

    fn progress_of(&self, project: &ProjectRow) -> Result<Vec<Progress>> {
        let (sets, submitted) = self.db.read(|c| -> Result<_> {
            Ok((
                q::sets_of_project(c, project.id)?,
                q::submitted_per_set(c, project.id)?,
            ))
        })?;
        let submitted: HashMap<i64, i64> = submitted.into_iter().collect();
        let per_set = i64::from(project.assignments_per_set);
        let mut rows: Vec<Progress> = Vec::new();
        for set in sets {
            let i = match rows
                .iter()
                .position(|r| r.model == set.model && r.layer == set.layer)
            {
                Some(i) => i,
                None => {
                    rows.push(Progress {
                        model: set.model.clone(),
                        layer: set.layer.clone(),
                        ..Progress::default()
                    });
                    rows.len() - 1
                }
            };
            let row = &mut rows[i];
            let awaiting = submitted.get(&set.id).copied().unwrap_or(0);
            let held = i64::from(set.active_count - set.approved_count);
            row.sets += 1;
            row.needed += per_set;
            row.approved += i64::from(set.approved_count);
            row.in_progress += held;
            row.awaiting_review += awaiting;
            row.leased += held - awaiting;
            row.left += per_set - i64::from(set.active_count);
        }
        Ok(rows)
    }

    /// The project's (model, layer) pairs, in import order: what the set browser offers.
    pub fn layers(&self, project: &str) -> Result<Vec<(String, String)>> {
        let project = self.project(project)?;
        self.db
            .read(|c| -> Result<_> { Ok(q::layers_of_project(c, project.id)?) })
    }

    /// Up to `limit` sets of the project that match, by model, layer and unit.
    pub fn find_sets(&self, project: &str, query: &SetQuery, limit: i64) -> Result<Vec<SetLine>> {
        let project = self.project(project)?;
        let sets = self.db.read(|c| -> Result<_> {
            Ok(q::sets_matching(
                c,
                project.id,
                query.model.as_deref(),
                query.layer.as_deref(),
                query.unit,
                limit,
            )?)
        })?;
        Ok(sets.iter().map(SetLine::of).collect())
    }

    /// One set's images, assignments (with their descriptions) and event log.
    pub fn set_history(
        &self,
        project: &str,
        model: &str,
        layer: &str,
        unit: i32,
    ) -> Result<SetHistory> {
        let project = self.project(project)?;
        let (set, work, events) = self.db.read(|c| -> Result<_> {
            let set = q::set_by_key(c, project.id, model, layer, unit)?.ok_or_else(|| {
                EngineError::NotFound(format!(
                    "project {:?} has no exemplar set {model}/{layer}/{unit}",
                    project.name
                ))
            })?;
            let work = q::work_history_of_set(c, set.id)?;
            let events = q::events_of_set(c, set.id)?;
            Ok((set, work, events))
        })?;
        let public: HashMap<i64, String> = work
            .iter()
            .map(|(a, _, _)| (a.id, a.public_id.clone()))
            .collect();
        Ok(SetHistory {
            images: StoredExemplar::of_set(&set)?
                .iter()
                .map(StoredExemplar::view_url)
                .collect(),
            set: SetLine::of(&set),
            assignments: work
                .into_iter()
                .map(|(a, worker, d)| AssignmentLine {
                    id: a.public_id,
                    worker,
                    state: a.state,
                    accepted_at: a.accepted_at,
                    expires_at: a.expires_at,
                    submitted_at: a.submitted_at,
                    reviewed_at: a.reviewed_at,
                    description: d.map(|d| d.raw),
                    feedback: a.feedback,
                    verified: a.verified,
                })
                .collect(),
            events: events
                .into_iter()
                .map(|(e, worker)| EventLine {
                    at: e.at,
                    kind: e.kind,
                    worker,
                    assignment: e.assignment_id.and_then(|id| public.get(&id).cloned()),
                    detail: e.detail,
                })
                .collect(),
        })
    }

    /// The descriptions feed: description events of the project after the cursor `after`, oldest
    /// first (approvals only, or every submission, approval and rejection).
    pub fn feed(
        &self,
        project: &str,
        after: i64,
        limit: i64,
        approved_only: bool,
    ) -> Result<Vec<FeedEvent>> {
        let project = self.project(project)?;
        let rows = self.db.read(|c| -> Result<_> {
            Ok(q::descriptions_after(
                c,
                project.id,
                after,
                limit,
                approved_only,
            )?)
        })?;
        rows.into_iter()
            .map(|r| {
                let unit = u32::try_from(r.unit).map_err(|_| {
                    EngineError::Corrupt(format!("set {}/{} has unit {}", r.model, r.layer, r.unit))
                })?;
                Ok(FeedEvent {
                    cursor: r.cursor,
                    // Auto-approval is approval, as far as the work's state goes.
                    state: if r.event == "auto_approved" {
                        State::Approved.as_str().to_owned()
                    } else {
                        r.event.clone()
                    },
                    event: r.event,
                    model: r.model,
                    layer: r.layer,
                    unit,
                    assignment_id: r.assignment_public_id,
                    worker: r.worker,
                    description: r.description.raw,
                    cleaned: r.description.cleaned,
                    created_at: r.description.created_at,
                })
            })
            .collect()
    }

    /// The dashboard: progress, submissions over time, and when the rest may be done.
    pub fn dashboard(&self, project: &str, now: Millis) -> Result<Dashboard> {
        let project = self.project(project)?;
        let progress = self.progress_of(&project)?;
        let work = self
            .db
            .read(|c| -> Result<_> { Ok(q::assignments_with_workers(c, project.id)?) })?;
        let submitted: Vec<Millis> = work.iter().filter_map(|(a, _)| a.submitted_at).collect();
        let totals = Totals::of(&progress);
        let remaining = totals.sum.needed - totals.sum.approved;
        Ok(Dashboard {
            chart: Throughput::of(&submitted, now),
            eta: Eta::of(&submitted, remaining, now),
            progress,
            totals,
        })
    }

    /// A worker's own work in every project.
    pub fn worker_summary(&self, worker: &str) -> Result<WorkerSummary> {
        self.db.read(|c| {
            let Some(w) = q::worker_by_external(c, worker)? else {
                return Ok(WorkerSummary::default());
            };
            let mut summary = WorkerSummary::default();
            for (state, n) in q::work_by_state(c, w.id)? {
                match state.parse::<State>() {
                    Ok(State::Submitted) => summary.pending += n,
                    Ok(State::Approved) => summary.approved += n,
                    Ok(State::Rejected) => summary.rejected += n,
                    _ => {}
                }
            }
            summary.done = summary.pending + summary.approved + summary.rejected;
            let (reward, bonus) = q::earnings(c, w.id)?;
            summary.earned_cents = reward.saturating_add(bonus);
            Ok(summary)
        })
    }

    /// The worker's latest rejected work, newest first.
    pub fn rejections(&self, worker: &str, limit: i64) -> Result<Vec<Rejection>> {
        self.db.read(|c| {
            let Some(w) = q::worker_by_external(c, worker)? else {
                return Ok(Vec::new());
            };
            Ok(q::rejections_of(c, w.id, limit)?
                .into_iter()
                .map(|(a, d)| Rejection {
                    text: d.raw,
                    feedback: a.feedback.unwrap_or_default(),
                    at: a.reviewed_at.unwrap_or(0),
                })
                .collect())
        })
    }

    /// How many sets of the project this worker could still be given (everyone's count when the
    /// worker is not known yet).
    pub fn available_to(&self, project: &ProjectRow, worker: &str) -> Result<i64> {
        self.db.read(|c| {
            let w = q::worker_by_external(c, worker)?;
            Ok(q::count_open_for(
                c,
                project.id,
                project.assignments_per_set,
                w.map(|w| w.id),
            )?)
        })
    }

    /// The worker table of a project: everyone with work in it, filtered and sorted.
    pub fn workers(
        &self,
        project: &str,
        query: &WorkerQuery,
        now: Millis,
    ) -> Result<Vec<WorkerLine>> {
        let project = self.project(project)?;
        let (work, ledger, all, sessions) = self.db.read(|c| -> Result<_> {
            Ok((
                q::assignments_with_workers(c, project.id)?,
                q::ledger_totals(c)?,
                q::all_workers(c)?,
                q::live_session_counts(c, now)?,
            ))
        })?;
        #[derive(Default)]
        struct Acc {
            pending: i64,
            approved: i64,
            rejected: i64,
            unverified: i64,
            times: Vec<i64>,
            last: Option<Millis>,
        }
        let mut acc: BTreeMap<i64, Acc> = BTreeMap::new();
        for (a, _) in &work {
            let r = acc.entry(a.worker_id).or_default();
            match a.state.parse::<State>() {
                Ok(State::Submitted) => r.pending += 1,
                Ok(State::Approved) => r.approved += 1,
                Ok(State::Rejected) => r.rejected += 1,
                _ => {}
            }
            if !a.verified {
                r.unverified += 1;
            }
            if let Some(t) = a.submitted_at {
                r.times.push((t - a.accepted_at) / 1000);
                r.last = r.last.max(Some(t));
            }
        }
        let mut money: BTreeMap<i64, (Vec<i64>, Vec<i64>)> = BTreeMap::new();
        for (w, kind, cents) in ledger {
            let m = money.entry(w).or_default();
            if kind == "reward" {
                m.0.push(cents)
            } else {
                m.1.push(cents)
            }
        }
        let live_sessions: BTreeMap<i64, i64> = sessions.into_iter().collect();
        let search = query.search.trim().to_lowercase();
        let week_ago = now - 7 * 86_400_000;
        let mut lines: Vec<WorkerLine> = all
            .into_iter()
            .filter_map(|w| acc.remove(&w.id).map(|r| (w, r)))
            .map(|(w, r)| {
                let (reward_cents, bonus_cents) = money
                    .remove(&w.id)
                    .map(|(r, b)| (q::sum_cents(r), q::sum_cents(b)))
                    .unwrap_or_default();
                let reviewed = r.approved + r.rejected;
                WorkerLine {
                    done: r.pending + r.approved + r.rejected,
                    pending: r.pending,
                    approved: r.approved,
                    rejected: r.rejected,
                    approval_rate: (reviewed > 0).then(|| r.approved * 100 / reviewed),
                    median_seconds: median(r.times),
                    reward_cents,
                    bonus_cents,
                    blocked: w.blocked,
                    block_reason: w.block_reason,
                    unverified: r.unverified,
                    sessions: live_sessions.get(&w.id).copied().unwrap_or(0),
                    last_submitted: r.last,
                    id: w.external_id,
                }
            })
            .filter(|l| search.is_empty() || l.id.to_lowercase().contains(&search))
            .filter(|l| match query.show {
                WorkerShow::All => true,
                WorkerShow::Pending => l.pending > 0,
                WorkerShow::Recent => l.last_submitted.is_some_and(|t| t >= week_ago),
                WorkerShow::Blocked => l.blocked,
            })
            .collect();
        // Every order ends on the id, so equal rows keep one order across reloads.
        match query.sort {
            WorkerSort::Done => lines.sort_by(|a, b| b.done.cmp(&a.done).then(a.id.cmp(&b.id))),
            WorkerSort::Pending => {
                lines.sort_by(|a, b| b.pending.cmp(&a.pending).then(a.id.cmp(&b.id)))
            }
            WorkerSort::ApprovalRate => lines.sort_by(|a, b| {
                let key = |l: &WorkerLine| l.approval_rate.unwrap_or(i64::MAX);
                key(a).cmp(&key(b)).then(a.id.cmp(&b.id))
            }),
            WorkerSort::Median => lines.sort_by(|a, b| {
                let key = |l: &WorkerLine| l.median_seconds.unwrap_or(i64::MAX);
                key(a).cmp(&key(b)).then(a.id.cmp(&b.id))
            }),
            WorkerSort::Recent => lines.sort_by(|a, b| {
                b.last_submitted
                    .cmp(&a.last_submitted)
                    .then(a.id.cmp(&b.id))
            }),
            WorkerSort::Id => lines.sort_by(|a, b| a.id.cmp(&b.id)),
        }
        Ok(lines)
    }

    /// Up to `limit` sets with work waiting for review, oldest submission first (or lowest
    /// agreement first), each with its descriptions and their agreement.
    pub fn review_queue(
        &self,
        project: &str,
        limit: i64,
        by_agreement: bool,
    ) -> Result<Vec<ReviewSet>> {
        let project = self.project(project)?;
        let (sets, flags) = self.db.read(|c| -> Result<_> {
            let mut out = Vec::new();
            for set_id in q::sets_awaiting_review(c, project.id, limit)? {
                let set = q::set_by_id(c, set_id)?;
                let work = q::work_on_set(c, set_id)?;
                let model = q::latest_model_description(c, set_id)?;
                out.push((set, work, model));
            }
            let flags: HashMap<i64, String> =
                q::flags_of_project(c, project.id)?.into_iter().collect();
            Ok((out, flags))
        })?;
        let mut rows = Vec::with_capacity(sets.len());
        for (set, work, model) in sets {
            let live: Vec<_> = work
                .into_iter()
                .filter(|(a, _, _)| a.state != State::Rejected.as_str())
                .collect();
            let texts: Vec<String> = live.iter().map(|(_, d, _)| d.raw.clone()).collect();
            let (mean, each) = agreement(&texts);
            let several = texts.len() >= 2;
            rows.push(ReviewSet {
                neuron: format!("{}/{}/{}", set.model, set.layer, set.unit),
                images: StoredExemplar::of_set(&set)?
                    .iter()
                    .map(StoredExemplar::view_url)
                    .collect(),
                agreement: several.then_some(mean),
                low: several && mean < 5.0,
                model: model.map(|(round, system, text)| ModelText {
                    round,
                    system,
                    text,
                }),
                work: live
                    .into_iter()
                    .zip(each)
                    .map(|((a, d, worker), score)| ReviewItem {
                        flag: flags.get(&a.id).cloned(),
                        agreement: several.then_some(score),
                        seconds: a.submitted_at.map(|t| (t - a.accepted_at) / 1000),
                        verified: a.verified,
                        id: a.public_id,
                        worker,
                        state: a.state,
                        text: d.raw,
                    })
                    .collect(),
            });
        }
        if by_agreement {
            rows.sort_by(|a, b| {
                let key = |s: &ReviewSet| s.agreement.unwrap_or(f64::INFINITY);
                key(a).total_cmp(&key(b))
            });
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_singles_out_the_odd_description() {
        let texts = vec![
            "dog faces".to_owned(),
            "dog faces and snouts".to_owned(),
            "blue sky".to_owned(),
        ];
        let (mean, each) = agreement(&texts);
        assert!(each[2] < each[0] && each[2] < each[1], "{each:?}");
        assert!(mean > 0.0 && mean < 100.0);
        assert_eq!(agreement(&texts[..1]).1, vec![100.0]);
    }

    #[test]
    fn the_chart_puts_every_recent_submission_in_a_bar_and_labels_its_axes() {
        let now = 10 * 3_600_000;
        let times = [now - 1, now - 60_000, now - 3_500_000, now - 3_599_000];
        let chart = Throughput::of(&times, now);
        assert_eq!(chart.bucket, "5 minutes");
        assert_eq!(chart.bars.iter().map(|b| b.count).sum::<i64>(), 4);
        assert_eq!(chart.bars.len() as i64, Throughput::BARS);
        assert_eq!(chart.x_ticks.first().unwrap().label, "2 h ago");
        assert_eq!(chart.x_ticks.last().unwrap().label, "now");
        assert_eq!(chart.y_ticks.first().unwrap().label, "0");
        assert_eq!(chart.y_ticks.last().unwrap().label, chart.max.to_string());
        // Bars stay inside the plot area.
        for b in &chart.bars {
            assert!(b.x >= chart.left && b.x + b.w <= chart.right && b.y >= chart.top);
            assert_eq!(b.y + b.h, chart.bottom);
        }
    }

    #[test]
    fn eta_says_done_stalled_or_how_long() {
        let now = 10 * 3_600_000;
        assert_eq!(Eta::of(&[], 0, now), Eta::Done);
        assert_eq!(Eta::of(&[now - 4_000_000], 5, now), Eta::Stalled);
        assert_eq!(
            Eta::of(&[now - 1, now - 2], 5, now),
            Eta::Hours {
                per_hour: 2,
                hours: "2.5".into()
            }
        );
    }

    #[test]
    fn ago_reads_like_a_person_says_it() {
        assert_eq!(ago(0), "now");
        assert_eq!(ago(45 * 60_000), "45 min ago");
        assert_eq!(ago(3 * 3_600_000), "3 h ago");
        assert_eq!(ago(3 * 86_400_000), "3 d ago");
    }
}
