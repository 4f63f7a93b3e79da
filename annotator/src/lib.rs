//! The annotator: a Mechanical-Turk-style task server for describing neurons.
//!
//! - [`engine`]: the assignment state machine (no HTTP); start reading here. `engine::external`:
//!   MTurk and Prolific entry and their reconciliation with the platforms' records.
//! - [`db`]: connections, migrations and every query (SQLite or PostgreSQL).
//! - [`domain`]: settings, states and the description rules as types.
//! - [`import`] / [`export`]: MILANNOTATIONS in, MILANNOTATIONS, MTurk CSV and JSONL out.
//! - [`images`]: exemplars rendered as a worker sees them, stored content-addressed.
//! - [`sessions`]: server-side sessions of workers and requesters, revocable; [`auth`]: the
//!   server's secret and requester API tokens; [`accounts`]: passwords and one-time codes.
//! - [`origin`]: client address, scheme and the public URL (trusted proxies only);
//!   [`limits`]: rate limits, sign-in throttling.
//! - [`qualification`]: the multiple-choice qualification test.
//! - [`catalog`]: a project's Neuron Catalog built live from the database (crate `milan-catalog`).
//! - [`http`]: everything HTTP (actix-web): the JSON API under /api/v1, the worker and requester
//!   pages, downloads, the error mapping and extractors they share, and `annotator serve`.
//! - [`loadgen`]: a simulated crowd over HTTP; [`bench`]: `annotator bench`.

pub mod accounts;
pub mod auth;
pub mod backup;
pub mod bench;
pub mod catalog;
pub mod db;
pub mod domain;
pub mod engine;
pub mod export;
pub mod http;
pub mod images;
pub mod import;
pub mod limits;
pub mod loadgen;
pub mod origin;
pub mod qualification;
pub mod reconcile;
pub mod reports;
pub mod sessions;
pub mod telemetry;
