//! Progress of a long job: a bar on a terminal, log lines on stderr otherwise (CI logs, `nohup`,
//! a pipe), so that a job that runs for minutes is never silent. A server's jobs log through
//! `tracing` instead ([`Progress::logged`]).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line is written without a terminal, at most (and at every tenth of the work).
const LOG_EVERY: Duration = Duration::from_secs(30);

/// Counts `len` things called `noun` (plural: "images", "units") for the job `what`; or bytes
/// ([`Progress::bytes`]), shown as MB and MB/s.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    what: String,
    noun: &'static str,
    bytes: bool,
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

    /// Counts bytes (a download, an unpacking) of a total that [`Progress::set_length`] may set
    /// later, when it becomes known.
    pub fn bytes(len: u64, what: &str) -> Progress {
        let p = Self::with_terminal(0, what, "bytes", std::io::stderr().is_terminal());
        p.bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {what} {{bar:40}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} (eta {{eta}})"
            ))
            .expect("valid template"),
        );
        p.bar.set_length(len);
        Progress { bytes: true, ..p }
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
            bytes: false,
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

    /// The total, once known (a download's length arrives with its answer).
    pub fn set_length(&self, len: u64) {
        self.bar.set_length(len);
    }

    /// Where the work stands (a resumed download starts where the last one stopped).
    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    /// The log line to write now, if one is due (no terminal only).
    fn due_line(&self) -> Option<String> {
        let log = self.log.as_ref()?;
        let mut state = log.lock().unwrap_or_else(|e| e.into_inner());
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0).max(1));
        // An unknown total (0) gives no tenths: a line every LOG_EVERY only.
        let tenth = if self.bar.length().unwrap_or(0) == 0 {
            state.1
        } else {
            pos * 10 / len
        };
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
        if self.bytes {
            let mb = |b: u64| b as f64 / 1e6;
            return format!(
                "{}: {:.1}/{:.1} MB ({}%, {:.1} MB/s), {elapsed:.0} s{left}",
                self.what,
                mb(pos),
                mb(len),
                pos * 100 / len,
                mb(pos) / elapsed.max(1e-3)
            );
        }
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

    /// `inner`, counting the bytes read through it.
    pub fn reader<R: std::io::Read>(&self, inner: R) -> Counted<'_, R> {
        Counted {
            progress: self,
            inner,
        }
    }

    /// Stops the bar where it is (a failure), leaving it on the terminal.
    pub fn abandon(&self) {
        self.bar.abandon();
    }
}

/// See [`Progress::reader`].
#[derive(Debug)]
pub struct Counted<'a, R> {
    progress: &'a Progress,
    inner: R,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
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
        let download = Progress {
            bytes: true,
            ..Progress::with_terminal(0, "resnet152.zip", "bytes", false)
        };
        download.set_length(50_000_000);
        download.bar.inc(25_000_000);
        let line = download.due_line().expect("half-way is due");
        assert!(
            line.starts_with("resnet152.zip: 25.0/50.0 MB (50%, "),
            "{line}"
        );
        let quiet = Progress::with_terminal(100, "x", "images", true);
        quiet.bar.inc(50);
        assert_eq!(quiet.due_line(), None, "a terminal gets the bar, not lines");
    }
}
