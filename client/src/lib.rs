//! The annotator from the outside, for the programs that drive it without linking it: the load
//! generator and benchmark (`milan-annotator`), `trainer simulate-active`, and the tests that run
//! a real server.
//!
//! - [`Serve`] starts an `annotator serve` process and waits until it listens; the
//!   [`ServerProcess`] is killed when dropped.
//! - [`Api`] makes JSON calls with a bearer token, one try each, and hands back every status (a
//!   4xx is an answer to look at, not an error): what load generators and tests need;
//!   [`Api::sign_in`] mints a worker's session with the requester's token, as an integration that
//!   signs its own crowd in does.
//! - [`Project`] is one project as a requester drives it, typed (the feed, the export, model
//!   descriptions, the ordering), every call under the one retry policy, [`Retry`].
//!
//! It knows the wire types (`milan_shared::wire`) and nothing of the server's insides: the
//! trainer depends on it without pulling in actix or diesel.

use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use milan_shared::wire;

mod project;
pub use project::{PAGE, Project};
use serde::Serialize;
use serde_json::Value;

/// How to start `annotator serve`: `Serve::new(exe, data_dir).arg(..).start()`.
#[derive(Debug, Clone)]
pub struct Serve {
    exe: PathBuf,
    data_dir: PathBuf,
    bind: String,
    args: Vec<OsString>,
    quiet: bool,
    log: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Serve {
    /// The arguments that turn the API's rate limits off, for a simulated crowd: all of it on
    /// one address, far faster than people.
    pub const NO_RATE_LIMITS: [&'static str; 1] = ["--no-rate-limits"];

    /// `exe serve --no-demo --data-dir data_dir`, on a free loopback port unless [`Serve::bind`]
    /// says otherwise.
    pub fn new(exe: &Path, data_dir: &Path) -> Serve {
        Serve {
            exe: exe.to_owned(),
            data_dir: data_dir.to_owned(),
            bind: "127.0.0.1:0".to_owned(),
            args: Vec::new(),
            quiet: false,
            log: None,
            env: Vec::new(),
        }
    }

    /// Write the server's log (its stderr) to this file instead of passing it through.
    pub fn log_to(mut self, file: &Path) -> Serve {
        self.log = Some(file.to_owned());
        self
    }

    /// Set an environment variable of the server (e.g. RUST_LOG).
    pub fn env(mut self, key: &str, value: &str) -> Serve {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Listen here instead (a fixed port, so that a restarted server is where clients left it).
    pub fn bind(mut self, address: &str) -> Serve {
        address.clone_into(&mut self.bind);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Serve {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<A: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = A>) -> Serve {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Throw the server's log away (its stderr) instead of passing it through.
    pub fn quiet(mut self) -> Serve {
        self.quiet = true;
        self
    }

    /// Starts the server and waits for its "annotator listening on" line.
    pub fn start(&self) -> io::Result<ServerProcess> {
        let mut child = Command::new(&self.exe)
            .args(["serve", "--no-demo", "--bind", &self.bind])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(match (&self.log, self.quiet) {
                (Some(file), _) => Stdio::from(std::fs::File::create(file)?),
                (None, true) => Stdio::null(),
                (None, false) => Stdio::inherit(),
            })
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("starting {}: {e}", self.exe.display()))
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = io::BufReader::new(stdout).lines();
        let base = loop {
            let Some(line) = lines.next() else {
                let status = child.wait()?;
                return Err(io::Error::other(format!(
                    "{} serve exited ({status}) before listening",
                    self.exe.display()
                )));
            };
            if let Some(rest) = line?.strip_prefix("annotator listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(ServerProcess { child, base })
    }
}

/// A running `annotator serve`, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    pub child: Child,
    /// e.g. `http://127.0.0.1:40363`
    pub base: String,
}

impl ServerProcess {
    /// SIGTERM, then waits for the exit: the server finishes what it is doing (a scheduled
    /// backup, queued writes) and stops. Errs when it did not exit successfully within `patience`
    /// (it is then killed).
    pub fn terminate(&mut self, patience: Duration) -> io::Result<()> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !sent.success() {
            return Err(io::Error::other(format!("kill -TERM failed: {sent}")));
        }
        let deadline = Instant::now() + patience;
        loop {
            if let Some(exit) = self.child.try_wait()? {
                return if exit.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!("the server exited with {exit}")))
                };
            }
            if Instant::now() > deadline {
                self.kill_9();
                return Err(io::Error::other(format!(
                    "the server did not stop within {patience:?} of SIGTERM"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// JSON calls to one server's API; see the crate documentation.
#[derive(Debug, Clone)]
pub struct Api {
    agent: ureq::Agent,
    base: String,
}

impl Api {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`), giving up on a call
    /// after a minute.
    pub fn new(base: &str) -> Api {
        Api {
            agent: agent(Duration::from_secs(60)),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// POSTs `body` (or nothing) to `path` with `token` (none when empty), and an
    /// Idempotency-Key when given: the status and the JSON answer (Null when empty, the text as
    /// a string when not JSON). Only a transport failure is an error.
    pub fn post(
        &self,
        path: &str,
        token: &str,
        body: Option<&impl Serialize>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if !token.is_empty() {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let sent = match body {
            Some(b) => request.send_json(b),
            None => request.send_empty(),
        };
        answer(sent)
    }

    /// GETs `path` with `token` (none when empty): the status and the JSON answer, as
    /// [`Api::post`].
    pub fn get(&self, path: &str, token: &str) -> Result<(u16, Value), String> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if !token.is_empty() {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        answer(request.call())
    }

    /// A session for `worker`, minted with the requester's token: the token for its requests.
    pub fn sign_in(&self, requester_token: &str, worker: &str) -> Result<String, String> {
        let request = wire::SessionRequest {
            worker_id: Some(worker.to_owned()),
            ..wire::SessionRequest::default()
        };
        let (status, body) = self.post(
            "/api/v1/workers/session",
            requester_token,
            Some(&request),
            None,
        )?;
        let session: wire::Session = serde_json::from_value(body.clone())
            .map_err(|e| format!("no session for {worker}: {status} {body} ({e})"))?;
        Ok(session.token)
    }
}

fn answer(
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, Value), String> {
    let mut resp = sent.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, value))
}

/// An HTTP agent that hands every status back (none is an error) and gives up on a step of a
/// call (connecting, sending, waiting for the answer, reading it) after `timeout`.
///
/// Not one timeout for the whole call: with one, ureq 3 resolves the host name on a thread of its
/// own, spawned for every call even on a pooled connection to an IP address (the load generator
/// spawned a thread per request). Without, the lookup runs on the caller's thread.
///
/// A connection idle for 3 s is not reused: the server closes one after 5 s (actix's keep-alive),
/// and a request sent on it just then fails without reaching the server (a POST is not retried).
/// Likely what the 64-worker load test met once on a loaded machine (one request of 12,000 failed
/// to reach the server; not reproduced in three runs alone).
fn agent(timeout: Duration) -> ureq::Agent {
    let step = Some(timeout);
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(step)
        .timeout_send_request(step)
        .timeout_send_body(step)
        .timeout_recv_response(step)
        .timeout_recv_body(step)
        .max_idle_age(Duration::from_secs(3))
        .build()
        .into()
}

/// How a failed call is tried again: waits doubling from `first_wait` to `max_wait`, a warning
/// each time, until it succeeds, the call refuses to go on, or `give_up_after` has passed.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub first_wait: Duration,
    /// The longest pause between two tries.
    pub max_wait: Duration,
    /// Give up after this long without an answer (None: never).
    pub give_up_after: Option<Duration>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            first_wait: Duration::from_millis(250),
            max_wait: Duration::from_secs(30),
            give_up_after: None,
        }
    }
}

impl Retry {
    /// Runs `attempt` until it gives an answer: `Ok(Ok(t))` is the answer, `Ok(Err(why))` a
    /// failure worth another try (the server absent, a 5xx, a body that broke off), `Err(e)` a
    /// failure that trying again will not mend (a 4xx), returned at once.
    pub fn run<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> anyhow::Result<Result<T, String>>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let mut wait = self.first_wait;
        loop {
            let failure = match attempt()? {
                Ok(t) => return Ok(t),
                Err(why) => why,
            };
            if let Some(limit) = self.give_up_after
                && started.elapsed() >= limit
            {
                anyhow::bail!(
                    "{what}: no answer for {:.0} s ({failure}); giving up",
                    started.elapsed().as_secs_f64()
                );
            }
            tracing::warn!(
                "{what}: {failure}; trying again in {:.1} s",
                wait.as_secs_f64()
            );
            std::thread::sleep(wait);
            wait = (wait * 2).min(self.max_wait);
        }
    }
}
