//! A simulated crowd over HTTP: the load of the concurrency and crash tests and of
//! `annotator bench`. Each worker gets a session minted with the requester's token (as an
//! integration that signs its own crowd in would), then accepts and submits until nothing is
//! left for it, sometimes returning a set, replaying a submit, or letting a lease run out before
//! submitting. The server must run with the API rate limits off (`--no-rate-limits`): the whole
//! crowd comes from one address, far faster than people.

use std::time::{Duration, Instant};

use milan_client::Api;
use milan_shared::wire;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct CrowdConfig {
    pub workers: usize,
    pub project: String,
    /// A requester API token, to mint the workers' sessions.
    pub requester_token: String,
    /// Chance of returning an accepted set instead of describing it.
    pub p_return: f64,
    /// Chance of submitting the same description a second time (a client retry).
    pub p_replay: f64,
    /// Chance of waiting past the lease before submitting (the submit must be refused).
    pub p_expire: f64,
    /// The project's lease, to know how long to wait for an expiry.
    pub lease_ms: u64,
    /// Stop after this long, even if work is left (0: no limit).
    pub max_duration: Duration,
    pub seed: u64,
}

impl CrowdConfig {
    pub fn new(workers: usize, project: &str, requester_token: &str) -> Self {
        CrowdConfig {
            workers,
            project: project.to_owned(),
            requester_token: requester_token.to_owned(),
            p_return: 0.0,
            p_replay: 0.0,
            p_expire: 0.0,
            lease_ms: 30 * 60 * 1000,
            max_duration: Duration::ZERO,
            seed: 0,
        }
    }
}

/// One submission the server acknowledged with 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    pub assignment: String,
    pub worker: String,
    pub description: String,
    /// When the acknowledgement arrived (a backup taken after it must hold the description).
    pub at: Instant,
}

#[derive(Debug, Default)]
pub struct CrowdReport {
    pub acknowledged: Vec<Acknowledged>,
    pub accepted: usize,
    pub returned: usize,
    pub replayed: usize,
    pub refused_late: usize,
    /// Wall time of each accept + submit pair.
    pub cycle_latencies: Vec<Duration>,
    /// Wall time of each accept alone (201 answers).
    pub accept_latencies: Vec<Duration>,
    /// Wall time of each first submit alone (200 answers).
    pub submit_latencies: Vec<Duration>,
    /// Requests that failed at the transport level (the server went away), each with what failed.
    pub transport_errors: Vec<String>,
    /// Answers no rule explains: must stay empty.
    pub surprises: Vec<String>,
    pub elapsed: Duration,
}

/// One worker's loop, into a report of its own (merged into the crowd's when it ends: a shared
/// one would be locked by every worker several times a loop).
fn worker_loop(
    base: &str,
    index: usize,
    config: &CrowdConfig,
    started: Instant,
    report: &mut CrowdReport,
) {
    let worker = format!("worker-{index:03}");
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_mul(1000).wrapping_add(index as u64));
    let api = Api::new(base);
    let token = match api.sign_in(&config.requester_token, &worker) {
        Ok(t) => t,
        Err(e) => {
            report
                .transport_errors
                .push(format!("sign-in of {worker}: {e}"));
            return;
        }
    };
    let none = None::<&Value>;
    let accept_path = format!("/api/v1/projects/{}/assignments", config.project);
    let mut idle_since: Option<Instant> = None;
    let mut n = 0usize;
    loop {
        if !config.max_duration.is_zero() && started.elapsed() > config.max_duration {
            return;
        }
        let t0 = Instant::now();
        let (status, body) = match api.post(&accept_path, &token, none, None) {
            Ok(r) => r,
            Err(e) => {
                report.transport_errors.push(format!("accept: {e}"));
                return;
            }
        };
        let accept_time = t0.elapsed();
        match status {
            201 => idle_since = None,
            204 => {
                // Nothing for this worker now; leases held by others may still run out.
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(config.lease_ms + 2000) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            other => {
                report.surprises.push(format!("accept: {other} {body}"));
                return;
            }
        }
        let accepted = match wire::Accepted::deserialize(&body) {
            Ok(a) => a,
            Err(e) => {
                report.surprises.push(format!("accept: {e}: {body}"));
                return;
            }
        };
        let id = accepted.assignment_id;
        report.accepted += 1;
        report.accept_latencies.push(accept_time);
        if rng.random_bool(config.p_return) {
            match api.post(
                &format!("/api/v1/assignments/{id}/return"),
                &token,
                none,
                None,
            ) {
                Ok((200, _)) => report.returned += 1,
                // On a loaded machine the lease can run out between accept and return; the
                // server then refuses the return, as it must (as for a slow submit below).
                Ok((409, _)) if t0.elapsed() >= Duration::from_millis(config.lease_ms) => {
                    report.refused_late += 1;
                }
                Ok((s, b)) => report.surprises.push(format!("return: {s} {b}")),
                Err(e) => report.transport_errors.push(format!("return: {e}")),
            }
            continue;
        }
        let late = rng.random_bool(config.p_expire);
        if late {
            std::thread::sleep(Duration::from_millis(config.lease_ms + 100));
        }
        n += 1;
        let text = format!("{worker} sees pattern {n} in set {}", accepted.set.id);
        let key = format!("{id}-1");
        let submit_path = format!("/api/v1/assignments/{id}/submit");
        let submit_body = wire::SubmitRequest {
            description: text.clone(),
        };
        let t1 = Instant::now();
        let submitted = api.post(&submit_path, &token, Some(&submit_body), Some(&key));
        let submit_time = t1.elapsed();
        match submitted {
            Ok((200, first)) if !late => {
                report.cycle_latencies.push(t0.elapsed());
                report.submit_latencies.push(submit_time);
                report.acknowledged.push(Acknowledged {
                    assignment: id.clone(),
                    worker: worker.clone(),
                    description: text.clone(),
                    at: Instant::now(),
                });
                if rng.random_bool(config.p_replay) {
                    match api.post(&submit_path, &token, Some(&submit_body), Some(&key)) {
                        Ok((200, again)) if again == first => report.replayed += 1,
                        Ok((s, b)) => report.surprises.push(format!("replay: {s} {b}")),
                        Err(e) => report.transport_errors.push(format!("replay: {e}")),
                    }
                }
            }
            // Refused after the lease: what we asked for, or what a slow cycle ran into.
            Ok((409, _)) if late || t0.elapsed() >= Duration::from_millis(config.lease_ms) => {
                report.refused_late += 1
            }
            Ok((s, b)) => report
                .surprises
                .push(format!("submit (late: {late}): {s} {b}")),
            Err(e) => {
                report.transport_errors.push(format!("submit: {e}"));
                return;
            }
        }
    }
}

impl CrowdReport {
    fn merge(&mut self, other: CrowdReport) {
        self.acknowledged.extend(other.acknowledged);
        self.accepted += other.accepted;
        self.returned += other.returned;
        self.replayed += other.replayed;
        self.refused_late += other.refused_late;
        self.cycle_latencies.extend(other.cycle_latencies);
        self.accept_latencies.extend(other.accept_latencies);
        self.submit_latencies.extend(other.submit_latencies);
        self.transport_errors.extend(other.transport_errors);
        self.surprises.extend(other.surprises);
    }
}

/// Runs the crowd against the server at `base` (e.g. `http://127.0.0.1:8080`).
pub fn run(base: &str, config: &CrowdConfig) -> CrowdReport {
    run_spread(&[base.to_owned()], config)
}

/// Runs the crowd against several servers of one database: worker `i` talks to `bases[i % n]`
/// (sessions live in the database, so any process serves any worker).
pub fn run_spread(bases: &[String], config: &CrowdConfig) -> CrowdReport {
    assert!(!bases.is_empty(), "at least one server");
    let mut report = CrowdReport::default();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..config.workers)
            .map(|i| {
                let base = bases[i % bases.len()].as_str();
                scope.spawn(move || {
                    let mut mine = CrowdReport::default();
                    worker_loop(base, i, config, started, &mut mine);
                    mine
                })
            })
            .collect();
        for worker in workers {
            report.merge(worker.join().expect("a crowd worker panicked"));
        }
    });
    report.elapsed = started.elapsed();
    report
}

/// The p-th percentile (0..=100) of some durations.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
