//! The annotator's JSON API (`/api/v1`) as types: what the server writes and what its clients
//! read — the trainer's follower and simulation, the annotator's load generator — in one place,
//! so that a renamed or retyped field fails to compile on both sides instead of at run time.
//!
//! Requests refuse unknown fields (a misspelt field is an error, not a silent default); answers
//! accept them (a newer server may say more).

use serde::{Deserialize, Serialize};

/// `POST /workers/session`: a worker's credential, or, with the requester's token, only the
/// worker's id (an integration that signs its own crowd in).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The answer to `POST /workers/session`: the bearer token of the new session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub worker_id: Option<String>,
    pub session_id: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// An exemplar set as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Set {
    pub id: i64,
    pub model: String,
    pub layer: String,
    pub unit: i32,
    /// Image URLs (`/images/<hash>.png`), the views a worker sees.
    pub images: Vec<String>,
}

/// The answer to `POST /projects/{p}/assignments`: 201 for a new assignment, 200 with `resumed`
/// for one the worker already held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub assignment_id: String,
    pub set: Set,
    pub expires_at: i64,
    pub instructions: String,
    pub title: String,
    pub resumed: bool,
}

/// One line of `GET /workers/me/assignments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveAssignment {
    pub assignment_id: String,
    pub project: String,
    pub set: Set,
    pub accepted_at: i64,
    pub expires_at: i64,
}

/// `POST /assignments/{id}/submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub description: String,
}

/// The answer to a submit (and, unchanged, to the same submit sent again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// `submitted`.
    pub status: String,
    pub assignment_id: String,
    /// The description as stored (trimmed).
    pub description: String,
    /// The reference's clean-up of it.
    pub cleaned: String,
    pub submitted_at: i64,
}

/// One line of the descriptions feed (`GET /projects/{p}/descriptions`, JSON lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// The event's id: the cursor to ask for what comes after it.
    pub cursor: i64,
    /// `submitted`, `approved`, `auto_approved` or `rejected`.
    pub event: String,
    pub model: String,
    pub layer: String,
    pub unit: u32,
    pub assignment_id: String,
    pub worker: String,
    /// The assignment's state this event put it in (`auto_approved` reads `approved`).
    pub state: String,
    /// What the worker wrote.
    pub description: String,
    /// The reference's clean-up of it (`milan_shared::cleaning`).
    pub cleaned: String,
    pub created_at: i64,
}

/// One neuron's model description and priority (`POST /projects/{p}/model-descriptions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDescription {
    pub model: String,
    pub layer: String,
    pub unit: i32,
    /// None (or absent): only the priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<f64>,
}

/// `POST /projects/{p}/model-descriptions`: a model's descriptions of one round, stored all or
/// none (replacing what the same system posted for the same round).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDescriptions {
    pub round: i32,
    pub system: String,
    pub descriptions: Vec<ModelDescription>,
}

/// `POST /projects/{p}/ordering`: accept-next by the trainer's priority, or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ordering {
    pub by_priority: bool,
}

/// Every error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_unknown_fields_and_leave_out_what_is_not_given() {
        let err =
            serde_json::from_str::<SubmitRequest>(r#"{"description":"x","desc":"y"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `desc`"), "{err}");
        let minted = SessionRequest {
            worker_id: Some("w1".into()),
            ..SessionRequest::default()
        };
        assert_eq!(
            serde_json::to_string(&minted).unwrap(),
            r#"{"worker_id":"w1"}"#
        );
        let only_priority = ModelDescription {
            model: "alexnet/imagenet".into(),
            layer: "conv1".into(),
            unit: 3,
            description: None,
            priority: Some(0.5),
        };
        assert_eq!(
            serde_json::to_string(&only_priority).unwrap(),
            r#"{"model":"alexnet/imagenet","layer":"conv1","unit":3,"priority":0.5}"#
        );
    }

    #[test]
    fn answers_accept_fields_a_newer_server_adds() {
        let line = r#"{"cursor":7,"event":"approved","model":"m/d","layer":"l","unit":1,
            "assignment_id":"a","worker":"w","state":"approved","description":"Red.",
            "cleaned":"red","created_at":5,"new_field":true}"#;
        let event: FeedEvent = serde_json::from_str(line).unwrap();
        assert_eq!(
            (event.cursor, event.unit, event.cleaned.as_str()),
            (7, 1, "red")
        );
    }
}
