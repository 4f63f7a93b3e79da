//! Progress of a long job: a bar on a terminal, log lines on stderr otherwise (CI logs, `nohup`,
//! a pipe), so that a job that runs for minutes is never silent. A server's jobs log through
//! `tracing` instead ([`Progress::logged`]).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line is written without a terminal, at most (and at every tenth of the work).
const LOG_EVERY: Duration = Duration::from_secs(30);

/// Counts `len` things called `noun` (plural: "images", "units") for the job `what`.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    what: String,
    noun: &'static str,
    /// Without a terminal: when the last line was written, and at which tenth.
    log: Option<Mutex<(Instant, u64)>>,
    /// Lines go to `tracing` (a server) rather than stderr.
    traced: bool,
    start: Instant,
}

impl Progress {
    pub fn new(len: usize, what: &str, noun: &'static str) -> Progress {
        Self::with_terminal(len, what, noun, std::io::stderr().is_terminal())
    }

    /// Log lines through `tracing` whatever stderr is: for jobs a server runs.
    pub fn logged(len: usize, what: &str, noun: &'static str) -> Progress {
        Progress {
            traced: true,
            ..Self::with_terminal(len, what, noun, false)
        }
    }

    fn with_terminal(len: usize, what: &str, noun: &'static str, terminal: bool) -> Progress {
        let bar = ProgressBar::new(len as u64).with_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {what} {{bar:40}} {{pos}}/{{len}} {noun} {{elapsed}} (eta {{eta}})"
            ))
            .expect("valid template"),
        );
        let log = if terminal {
            None
        } else {
            bar.set_draw_target(ProgressDrawTarget::hidden());
            Some(Mutex::new((Instant::now(), 0)))
        };
        Progress {
            bar,
            what: what.to_owned(),
            noun,
            log,
            traced: false,
            start: Instant::now(),
        }
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some(line) = self.due_line() {
            if self.traced {
                tracing::info!("{line}");
            } else {
                eprintln!("{line}");
            }
        }
    }

    /// The log line to write now, if one is due (no terminal only).
    fn due_line(&self) -> Option<String> {
        let log = self.log.as_ref()?;
        let mut state = log.lock().unwrap_or_else(|e| e.into_inner());
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0).max(1));
        let tenth = pos * 10 / len;
        if tenth == state.1 && state.0.elapsed() < LOG_EVERY {
            return None;
        }
        *state = (Instant::now(), tenth);
        Some(self.line(pos, len))
    }

    fn line(&self, pos: u64, len: u64) -> String {
        let elapsed = self.start.elapsed().as_secs_f64();
        let left = if pos > 0 && pos < len {
            format!(
                ", about {:.0} s left",
                elapsed * (len - pos) as f64 / pos as f64
            )
        } else {
            String::new()
        };
        format!(
            "{}: {pos}/{len} {} ({}%), {elapsed:.0} s{left}",
            self.what,
            self.noun,
            pos * 100 / len
        )
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_it_logs_each_tenth_once_and_names_the_noun() {
        let p = Progress::with_terminal(100, "exemplars of conv5", "units", false);
        let mut lines = Vec::new();
        for _ in 0..100 {
            p.bar.inc(1);
            lines.extend(p.due_line());
        }
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert!(
            lines[0].starts_with("exemplars of conv5: 10/100 units (10%)"),
            "{lines:?}"
        );
        assert!(lines[9].starts_with("exemplars of conv5: 100/100 units (100%)"));
        let quiet = Progress::with_terminal(100, "x", "images", true);
        quiet.bar.inc(50);
        assert_eq!(quiet.due_line(), None, "a terminal gets the bar, not lines");
    }
}
