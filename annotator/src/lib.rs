//! The annotator: a Mechanical-Turk-style task server for describing neurons.
//!
//! - [`engine`]: the assignment state machine (no HTTP); start reading here. `engine::external`:
//!   MTurk and Prolific entry and their reconciliation with the platforms' records.
//! - [`db`]: connections, migrations and every query (SQLite or PostgreSQL).
//! - [`domain`]: settings, states and the description rules as types.
//! - [`import`] / [`export`]: MILANNOTATIONS in, MILANNOTATIONS, MTurk CSV and JSONL out;
//!   [`download`]: exports over HTTP (MILANNOTATIONS streamed as a tar while it is written).
//! - [`images`]: exemplars rendered as a worker sees them, stored content-addressed.
//! - [`sessions`]: server-side sessions of workers and requesters, revocable; [`auth`]: the
//!   server's secret and requester API tokens; [`accounts`]: passwords and one-time codes.
//! - [`origin`]: client address, scheme and the public URL (trusted proxies only);
//!   [`limits`]: rate limits, sign-in throttling.
//! - [`qualification`]: the multiple-choice qualification test.
//! - [`api`]: the JSON API under /api/v1 (actix-web); [`web`]: the worker and requester pages;
//!   [`server`] runs both.
//! - [`loadgen`]: a simulated crowd over HTTP; [`bench`]: `annotator bench`.

pub mod accounts;
pub mod api;
pub mod auth;
pub mod bench;
pub mod db;
pub mod domain;
pub mod download;
pub mod engine;
pub mod export;
pub mod images;
pub mod import;
pub mod limits;
pub mod loadgen;
pub mod origin;
pub mod qualification;
pub mod reconcile;
pub mod reports;
pub mod server;
pub mod sessions;
pub mod web;
