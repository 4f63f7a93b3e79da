//! Out: a project as a MILANNOTATIONS folder (what the trainer reads), as Mechanical Turk's
//! batch-results CSV (what MILAN's own cleaning script reads), or as JSON lines.

pub mod milannotations;

pub use milannotations::{Plan, Units};

use std::io::Write;

use milan_shared::milannotations::FormatError;
use serde_json::json;

use crate::db::DbError;
use crate::db::queries::{self as q, AssignmentRow, DescriptionRow, SetRow};
use crate::engine::{Engine, EngineError};
use crate::images::ImageError;
use crate::import::StoredExemplar;
use crate::origin::PublicUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Milannotations,
    MturkCsv,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "milannotations" => Ok(Format::Milannotations),
            "mturk-csv" => Ok(Format::MturkCsv),
            "jsonl" => Ok(Format::Jsonl),
            other => Err(format!(
                "unknown export format {other:?}: use milannotations, mturk-csv or jsonl"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{0}")]
    Incomplete(String),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the export: {0}")]
    Csv(#[from] csv::Error),
}

impl From<DbError> for ExportError {
    fn from(e: DbError) -> Self {
        ExportError::Engine(EngineError::Db(e))
    }
}

type Work = Vec<(AssignmentRow, DescriptionRow, String, SetRow)>;

fn load(engine: &Engine, project: &str) -> Result<(q::ProjectRow, Vec<SetRow>, Work), ExportError> {
    let project = engine.project(project)?;
    let (sets, work) = engine.db().read(|c| -> Result<_, EngineError> {
        Ok((
            q::sets_of_project(c, project.id)?,
            q::submitted_work(c, project.id)?,
        ))
    })?;
    Ok((project, sets, work))
}

/// MTurk's batch-results columns, in MTurk's order.
pub const MTURK_COLUMNS: [&str; 13] = [
    "HITId",
    "HITTypeId",
    "Title",
    "Reward",
    "AssignmentId",
    "WorkerId",
    "AssignmentStatus",
    "AcceptTime",
    "SubmitTime",
    "ApprovalTime",
    "RejectionTime",
    "RequesterFeedback",
    "WorkTimeInSeconds",
];

/// A cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return: OWASP's list) gets a leading `'`, which spreadsheets show as text.
pub fn spreadsheet_safe(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

/// Writes Mechanical Turk's batch-results CSV: one row per submitted assignment. Every cell is
/// [`spreadsheet_safe`]; image URLs are absolute when the server's public URL is known.
pub fn mturk_csv(
    engine: &Engine,
    project: &str,
    public_url: Option<&PublicUrl>,
    out: impl Write,
) -> Result<(), ExportError> {
    let (project, _, work) = load(engine, project)?;
    let k = work
        .iter()
        .map(|(_, _, _, set)| StoredExemplar::of_set(set).map(|e| e.len()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .max()
        .unwrap_or(15)
        .max(15);
    let mut writer = csv::Writer::from_writer(out);
    let mut header: Vec<String> = MTURK_COLUMNS.iter().map(|c| c.to_string()).collect();
    header.push("Input.layer".into());
    header.push("Input.unit".into());
    header.push("Input.model".into());
    header.extend((1..=k).map(|i| format!("Input.image_url_{i}")));
    header.push("Answer.summary".into());
    writer.write_record(&header)?;
    for (a, d, worker, set) in &work {
        let status = match a.state.as_str() {
            "approved" => "Approved",
            "rejected" => "Rejected",
            _ => "Submitted",
        };
        let time = |t: Option<i64>| t.map(crate::domain::mturk_time).unwrap_or_default();
        let (approval, rejection) = match a.state.as_str() {
            "approved" => (time(a.reviewed_at), String::new()),
            "rejected" => (String::new(), time(a.reviewed_at)),
            _ => (String::new(), String::new()),
        };
        let mut row = vec![
            format!("set-{}", set.id),
            project.name.clone(),
            project.title.clone(),
            format!(
                "${}.{:02}",
                project.reward_cents / 100,
                project.reward_cents % 100
            ),
            a.public_id.clone(),
            worker.clone(),
            status.to_owned(),
            crate::domain::mturk_time(a.accepted_at),
            time(a.submitted_at),
            approval,
            rejection,
            a.feedback.clone().unwrap_or_default(),
            a.submitted_at
                .map(|s| ((s - a.accepted_at) / 1000).to_string())
                .unwrap_or_default(),
            set.layer.clone(),
            set.unit.to_string(),
            set.model.clone(),
        ];
        let exemplars = StoredExemplar::of_set(set)?;
        row.extend((0..k).map(|i| {
            exemplars
                .get(i)
                .map(|e| {
                    let path = e.view_url();
                    public_url.map_or(path.clone(), |u| u.join(&path))
                })
                .unwrap_or_default()
        }));
        row.push(d.raw.clone());
        writer.write_record(row.iter().map(|cell| spreadsheet_safe(cell)))?;
    }
    writer.flush()?;
    Ok(())
}

/// Writes one JSON object per submitted assignment.
pub fn jsonl(engine: &Engine, project: &str, mut out: impl Write) -> Result<(), ExportError> {
    let (project, _, work) = load(engine, project)?;
    for (a, d, worker, set) in &work {
        let line = json!({
            "project": project.name,
            "model": set.model,
            "layer": set.layer,
            "unit": set.unit,
            "set_id": set.id,
            "assignment_id": a.public_id,
            "worker": worker,
            "state": a.state,
            "description": d.raw,
            "cleaned": d.cleaned,
            "accepted_at": a.accepted_at,
            "submitted_at": a.submitted_at,
            "reviewed_at": a.reviewed_at,
            "feedback": a.feedback,
            "verified": a.verified,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// A small export (MTurk CSV or JSON lines) in memory, as a download: (bytes, content type, file
/// extension). MILANNOTATIONS is streamed instead ([`crate::http::downloads`]).
pub fn whole(
    engine: &Engine,
    project: &str,
    format: Format,
    public_url: Option<&PublicUrl>,
) -> Result<(Vec<u8>, &'static str, &'static str), ExportError> {
    let mut out = Vec::new();
    Ok(match format {
        Format::MturkCsv => {
            mturk_csv(engine, project, public_url, &mut out)?;
            (out, "text/csv", "csv")
        }
        Format::Jsonl => {
            jsonl(engine, project, &mut out)?;
            (out, "application/x-ndjson", "jsonl")
        }
        Format::Milannotations => {
            return Err(ExportError::Incomplete(
                "MILANNOTATIONS is streamed, never built in memory".into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn spreadsheet_formulas_are_neutralised() {
        use super::spreadsheet_safe as safe;
        assert_eq!(
            safe("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        for bad in ["+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(safe(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(safe("red circles"), "red circles");
        assert_eq!(safe(""), "");
    }
}
