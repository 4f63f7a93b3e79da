//! The platforms' own records, read for reconciliation (`annotator mturk reconcile`,
//! `annotator prolific reconcile`): MTurk's batch results CSV, and Prolific's export of a study's
//! submissions or a plain list of participant ids. Errors name the file, line and column.

use std::collections::BTreeSet;
use std::path::Path;

use crate::engine::external::{MturkRecord, ProlificRecord, platform_id_ok};

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Csv { file: String, message: String },
    #[error("{file}, line {line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
}

/// A header as compared: lowercase, without spaces, '_', '.' or '-'.
fn key(h: &str) -> String {
    h.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '.' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn column(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers
        .iter()
        .position(|h| names.contains(&key(h).as_str()))
}

/// MTurk's batch results: `AssignmentId` and `WorkerId` are needed, `HITId` and
/// `Answer.description` (what the worker's browser posted) are used when present.
pub fn read_mturk_results(path: &Path) -> Result<Vec<MturkRecord>, RecordsError> {
    let file = path.display().to_string();
    let csv_err = |e: csv::Error| RecordsError::Csv {
        file: file.clone(),
        message: e.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| match e.into_kind() {
            csv::ErrorKind::Io(source) => RecordsError::Read {
                file: file.clone(),
                source,
            },
            other => RecordsError::Csv {
                file: file.clone(),
                message: format!("{other:?}"),
            },
        })?;
    let headers = reader.headers().map_err(csv_err)?.clone();
    let need = |names: &[&str], shown: &str| {
        column(&headers, names).ok_or_else(|| RecordsError::Csv {
            file: file.clone(),
            message: format!(
                "no {shown} column; this is not MTurk's batch results file (download it from the \
                 batch's Review results page)"
            ),
        })
    };
    let assignment = need(&["assignmentid"], "AssignmentId")?;
    let worker = need(&["workerid"], "WorkerId")?;
    let hit = column(&headers, &["hitid"]);
    let answer = column(&headers, &["answerdescription"]);
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(csv_err)?;
        let at = |message: String| RecordsError::Line {
            file: file.clone(),
            line,
            message,
        };
        let get = |c: usize| row.get(c).unwrap_or("").trim().to_owned();
        let (a, w) = (get(assignment), get(worker));
        if !platform_id_ok(&a) {
            return Err(at(format!("AssignmentId {a:?} is not an MTurk id")));
        }
        if !platform_id_ok(&w) {
            return Err(at(format!("WorkerId {w:?} is not an MTurk id")));
        }
        if !seen.insert(a.clone()) {
            return Err(at(format!("AssignmentId {a} appears twice")));
        }
        out.push(MturkRecord {
            line,
            assignment_id: a,
            worker_id: w,
            hit_id: hit.map(get).filter(|h| !h.is_empty()),
            answer: answer.map(|c| row.get(c).unwrap_or("").to_owned()),
        });
    }
    Ok(out)
}

/// Prolific's export of a study's submissions (a CSV with a participant id column, such as
/// "Participant id"; a "Session id" and a "Status" column are used when present), or a plain list
/// of participant ids, one per line.
pub fn read_prolific_export(path: &Path) -> Result<Vec<ProlificRecord>, RecordsError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RecordsError::Read {
        file: file.clone(),
        source,
    })?;
    let first = text.lines().next().unwrap_or("");
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |line: usize, pid: String, session: Option<String>, status: Option<String>| {
        if !platform_id_ok(&pid) {
            return Err(RecordsError::Line {
                file: file.clone(),
                line,
                message: format!("participant id {pid:?} is not a Prolific id"),
            });
        }
        if seen.insert(pid.clone()) {
            out.push(ProlificRecord {
                line,
                participant_id: pid,
                session_id: session,
                status,
            });
        }
        Ok(())
    };
    if !first.contains(',') {
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            push(i + 1, l.to_owned(), None, None)?;
        }
        return Ok(out);
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let csv_err = |e: csv::Error| RecordsError::Csv {
        file: file.clone(),
        message: e.to_string(),
    };
    let headers = reader.headers().map_err(csv_err)?.clone();
    let participant =
        column(&headers, &["participantid", "prolificpid", "pid"]).ok_or_else(|| {
            RecordsError::Csv {
                file: file.clone(),
                message: "no participant id column (\"Participant id\" or \"PROLIFIC_PID\")".into(),
            }
        })?;
    let session = column(&headers, &["sessionid"]);
    let status = column(&headers, &["status"]);
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .map_err(csv_err)?;
    for (i, row) in rows.iter().enumerate() {
        let get = |c: usize| row.get(c).unwrap_or("").trim().to_owned();
        push(
            i + 2,
            get(participant),
            session.map(get).filter(|s| !s.is_empty()),
            status.map(get).filter(|s| !s.is_empty()),
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mturk_results_need_their_columns_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.csv");
        std::fs::write(
            &ok,
            "\"HITId\",\"AssignmentId\",\"WorkerId\",\"Answer.description\"\n\"H1\",\"A1\",\"W1\",\"red circles\"\n",
        )
        .unwrap();
        let r = read_mturk_results(&ok).unwrap();
        assert_eq!(r[0].assignment_id, "A1");
        assert_eq!(r[0].hit_id.as_deref(), Some("H1"));
        assert_eq!(r[0].answer.as_deref(), Some("red circles"));
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "AssignmentId,WorkerId\nA1,W1\nA1,W2\n").unwrap();
        let e = read_mturk_results(&bad).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("twice"), "{e}");
        std::fs::write(&bad, "Foo,WorkerId\nA1,W1\n").unwrap();
        assert!(
            read_mturk_results(&bad)
                .unwrap_err()
                .to_string()
                .contains("no AssignmentId")
        );
    }

    #[test]
    fn prolific_exports_or_plain_lists() {
        let dir = tempfile::tempdir().unwrap();
        let csv_file = dir.path().join("export.csv");
        std::fs::write(
            &csv_file,
            "Submission id,Participant id,Status\nS1,P1,APPROVED\nS2,P2,RETURNED\n",
        )
        .unwrap();
        let r = read_prolific_export(&csv_file).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].status.as_deref(), Some("RETURNED"));
        assert_eq!(r[0].session_id, None, "a submission id is not a session id");
        let list = dir.path().join("ids.txt");
        std::fs::write(&list, "# participants\nP1\n\nP2\n").unwrap();
        assert_eq!(read_prolific_export(&list).unwrap().len(), 2);
        std::fs::write(&list, "P1\n<script>\n").unwrap();
        let e = read_prolific_export(&list).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
