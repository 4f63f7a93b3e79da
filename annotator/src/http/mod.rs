//! The HTTP layer, in one place: handlers read the request, call the engine (or the read side,
//! accounts, qualifications) and render; no rule of the task server lives here.
//!
//! - [`state`]: what every handler reaches ([`state::AppState`]);
//! - [`extract`]: the checks most handlers start with, as extractors (a requester's API token, a
//!   worker's session within the rate limits, a signed-in requester's page);
//! - [`errors`]: what a client sees of an error, for the API and the pages alike;
//! - [`api`]: the JSON API under /api/v1;
//! - [`pages`]: the worker and requester pages; [`views`]: templates, static files and the
//!   Content-Security-Policy; [`cookies`]: sealed cookies, CSRF tokens, trusted devices;
//! - [`catalog`]: the project's Neuron Catalog at /catalog/{project}/ (requester, or public);
//! - [`downloads`]: exports over HTTP (MILANNOTATIONS streamed as a tar while it is written);
//! - [`ops`]: health and readiness probes, Prometheus metrics (admin address), and the request
//!   middleware (request ids, log lines, latency metrics);
//! - [`server`]: `annotator serve`, which mounts all of it.

pub mod api;
pub mod catalog;
pub mod cookies;
pub mod downloads;
pub mod errors;
pub mod extract;
pub mod ops;
pub mod pages;
pub mod server;
pub mod state;
pub mod views;

/// Registers every route: static files, the pages, then the API (with its JSON 404 last).
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    ops::configure_probes(cfg);
    views::configure(cfg);
    pages::configure(cfg);
    catalog::configure(cfg);
    api::configure(cfg);
}
