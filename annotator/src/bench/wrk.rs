//! The worker loop driven by wrk (an external load generator, C and LuaJIT), so that the bench's
//! figure does not depend on our own client: each wrk connection is one worker with its own
//! session, looping accept then submit from a Lua script written here.
//!
//! wrk times every request but not each kind apart, so its rows give one p50/p99 over accepts
//! and submits together. It stops mid-request at the end of the case, so the check afterwards
//! allows up to one stored description per worker that wrk did not count.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

/// What wrk reported through the script's `done`.
#[derive(Debug, Deserialize)]
pub struct WrkReport {
    /// Submits answered 200.
    pub loops: u64,
    /// Answers no rule explains (anything but 201/204 to an accept, 200 to a submit).
    pub unexpected: u64,
    /// The first unexpected answer, for the error message.
    pub first_unexpected: String,
    pub duration_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
}

/// The Lua loop: thread `i` (one connection each) is worker `i` with session `tokens[i]`.
fn script(project: &str, tokens: &[String]) -> String {
    let mut s = String::from("local tokens = {\n");
    for t in tokens {
        // Tokens are `ms_` and hex: nothing to escape.
        let _ = writeln!(s, "  \"{t}\",");
    }
    let _ = write!(
        s,
        r#"}}
local threads = {{}}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end
function init(args)
  token = tokens[id]
  loops = 0
  unexpected = 0
  first_unexpected = ""
  n = 0
  assignment = nil
  accept = wrk.format("POST", "/api/v1/projects/{project}/assignments",
    {{ ["Authorization"] = "Bearer " .. token }}, "")
end
function request()
  if assignment == nil then
    return accept
  end
  n = n + 1
  local body = string.format('{{"description":"worker %d sees pattern %d in set %s"}}', id, n, assignment)
  return wrk.format("POST", "/api/v1/assignments/" .. assignment .. "/submit",
    {{ ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }}, body)
end
local function surprise(what, status, body)
  unexpected = unexpected + 1
  if first_unexpected == "" then
    first_unexpected = what .. " " .. status .. " " .. string.sub(body or "", 1, 200)
  end
end
function response(status, headers, body)
  if assignment == nil then
    if status == 201 then
      assignment = string.match(body, '"assignment_id"%s*:%s*"([^"]+)"')
      if assignment == nil then surprise("accept", status, body) end
    elseif status ~= 204 then
      surprise("accept", status, body)
    end
  else
    if status == 200 then
      loops = loops + 1
    else
      surprise("submit", status, body)
    end
    assignment = nil
  end
end
function done(summary, latency, requests)
  local total, bad, first = 0, 0, ""
  for _, t in ipairs(threads) do
    total = total + t:get("loops")
    bad = bad + t:get("unexpected")
    local f = t:get("first_unexpected")
    if first == "" and f ~= nil then first = f end
  end
  local e = summary.errors
  io.write(string.format(
    'MILAN-WRK {{"loops":%d,"unexpected":%d,"first_unexpected":"%s","duration_us":%d,"p50_us":%d,"p99_us":%d,"socket_errors":%d}}\n',
    total, bad, string.gsub(first, '[\\"%c]', ' '), summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout))
end
"#
    );
    s
}

/// The `MILAN-WRK` line of wrk's output.
pub fn parse(output: &str) -> Result<WrkReport> {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("MILAN-WRK "))
        .with_context(|| format!("wrk printed no MILAN-WRK line:\n{output}"))?;
    serde_json::from_str(line).with_context(|| format!("wrk's report line: {line}"))
}

/// CPU seconds used by this process's reaped children so far (wrk, once waited for).
fn children_cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Runs wrk for `seconds` with one connection (and thread) per session against `base`; returns
/// its report and the CPU seconds wrk used.
pub fn run(
    dir: &Path,
    base: &str,
    project: &str,
    tokens: &[String],
    seconds: u64,
) -> Result<(WrkReport, f64)> {
    let script_path = dir.join("worker-loop.lua");
    std::fs::write(&script_path, script(project, tokens))?;
    let workers = tokens.len().to_string();
    let cpu_before = children_cpu_seconds();
    let output = std::process::Command::new("wrk")
        .args(["-t", &workers, "-c", &workers, "-d"])
        .arg(format!("{seconds}s"))
        .args(["--timeout", "30s"])
        .arg("-s")
        .arg(&script_path)
        .arg(base)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "wrk is not installed: `apt-get install wrk` (Debian), or run \
                     scripts/bench-loop, which installs it"
                )
            } else {
                anyhow::Error::new(e).context("run wrk")
            }
        })?;
    let cpu = children_cpu_seconds() - cpu_before;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!("wrk failed ({}):\n{text}", output.status);
    }
    let report = parse(&text)?;
    ensure!(
        report.unexpected == 0 && report.socket_errors == 0,
        "wrk met {} unexpected answers (first: {}) and {} socket errors",
        report.unexpected,
        report.first_unexpected,
        report.socket_errors
    );
    Ok((report, cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_embeds_every_session_and_the_project() {
        let s = script("bench", &["ms_aa".into(), "ms_bb".into()]);
        assert!(s.contains("\"ms_aa\",\n  \"ms_bb\","));
        assert!(s.contains("/api/v1/projects/bench/assignments"));
        assert!(s.contains("MILAN-WRK"));
    }

    #[test]
    fn the_report_line_is_found_among_wrk_s_own_output() {
        let out = "Running 2s test @ http://127.0.0.1:1\n  2 threads and 2 connections\n\
                   MILAN-WRK {\"loops\":12,\"unexpected\":0,\"first_unexpected\":\"\",\
                   \"duration_us\":2000000,\"p50_us\":900,\"p99_us\":4000,\"socket_errors\":0}\n\
                   Requests/sec: 12.0\n";
        let r = parse(out).unwrap();
        assert_eq!((r.loops, r.p99_us), (12, 4000.0));
        assert!(parse("Running 2s test").is_err());
    }
}
