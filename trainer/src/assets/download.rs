//! Downloads of the authors' released files: resumable (a `.part` file continues with an HTTP
//! range request, in the same run after a dropped connection and in the next run after a killed
//! one), shown with a progress bar, and checked against a SHA-256 manifest that records each
//! file's hash once its first download has proved usable and holds every later download to it.

use milan_shared::atomic;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use milan_shared::progress::Progress;
use serde::{Deserialize, Serialize};

/// Where the authors publish (their `src/utils/hubs.py`); `--url-base` replaces it.
pub const DEFAULT_URL_BASE: &str = "https://milan.csail.mit.edu";

/// How often a dropped connection is resumed within one run.
const RETRIES: usize = 5;

/// SHA-256 of every file downloaded into a folder, by file name.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(skip)]
    path: PathBuf,
    /// File name -> lower-case hex SHA-256.
    pub sha256: BTreeMap<String, String>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let mut manifest = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str::<Manifest>(&text)
                .with_context(|| format!("{}: not a download manifest", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        manifest.path = path.to_owned();
        Ok(manifest)
    }

    /// Fails if a SHA-256 other than `sha` is recorded for `name`.
    pub fn check(&self, name: &str, sha: &str) -> Result<()> {
        match self.sha256.get(name) {
            Some(known) if known != sha => bail!(
                "{name}: SHA-256 {sha} differs from {known}, recorded in {} at its first download \
                 (the file is damaged, or the server's copy changed; if you trust the new one, \
                 remove its line from the manifest)",
                self.path.display()
            ),
            _ => Ok(()),
        }
    }

    /// Records `sha` for `name` (once the file has proved usable), atomically.
    pub fn record(&mut self, name: &str, sha: &str) -> Result<()> {
        self.check(name, sha)?;
        if self.sha256.get(name).map(String::as_str) == Some(sha) {
            return Ok(());
        }
        self.sha256.insert(name.to_owned(), sha.to_owned());
        atomic::write(&self.path, &serde_json::to_vec_pretty(self)?)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(Some(Duration::from_secs(6 * 3600)))
        .build()
        .into()
}

/// Downloads `url` to `dir/name` (through `dir/name.part`), resuming what an earlier run left,
/// and checks it against `manifest`; returns the file and its SHA-256, which the caller records
/// once the file has proved usable. A file already complete in `dir` is checked, not fetched.
pub fn fetch(url: &str, dir: &Path, name: &str, manifest: &Manifest) -> Result<(PathBuf, String)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let done = dir.join(name);
    let part = dir.join(format!("{name}.part"));
    if !done.is_file() {
        download(url, &part)?;
        std::fs::rename(&part, &done)
            .with_context(|| format!("moving {} into place", part.display()))?;
    }
    let sha = crate::util::checksum::sha256_file(&done)?;
    if let Err(e) = manifest.check(name, &sha) {
        // A damaged file must not be resumed or reused by the next run.
        let _ = std::fs::remove_file(&done);
        return Err(e);
    }
    Ok((done, sha))
}

/// Fills `part` from `url`, continuing from its current length.
pub(crate) fn download(url: &str, part: &Path) -> Result<()> {
    let agent = agent();
    let label = part
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".part").to_owned())
        .unwrap_or_default();
    let bar = Progress::bytes(0, &label);
    let started = std::time::Instant::now();
    let mut failures = 0;
    loop {
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut request = agent.get(url);
        if have > 0 {
            request = request.header("Range", &format!("bytes={have}-"));
        }
        let attempt: Result<Option<String>> = (|| {
            let resp = match request.call() {
                Ok(r) => r,
                Err(e) => return Ok(Some(e.to_string())),
            };
            let status = resp.status().as_u16();
            let length: Option<u64> = resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let mut file = match status {
                206 => OpenOptions::new().append(true).open(part)?,
                200 => File::create(part)?,
                // Asked for bytes past the end: the part is already whole.
                416 if have > 0 => return Ok(None),
                404 => bail!("{url}: not found (404); check the name and --url-base"),
                s if (500..600).contains(&s) => return Ok(Some(format!("status {s}"))),
                s => bail!("{url}: the server answered {s}"),
            };
            let start = if status == 206 { have } else { 0 };
            bar.set_length(start + length.unwrap_or(0));
            bar.set_position(start);
            let mut reader = resp.into_body().into_reader();
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        file.flush()?;
                        return Ok(Some(format!("connection lost after {got} bytes ({e})")));
                    }
                };
                file.write_all(&buf[..n])
                    .with_context(|| format!("writing {}", part.display()))?;
                got += n as u64;
                bar.inc(n as u64);
            }
            file.sync_all()?;
            if let Some(len) = length
                && got < len
            {
                return Ok(Some(format!(
                    "connection closed after {got} of {len} bytes"
                )));
            }
            Ok(None)
        })();
        match attempt? {
            None => {
                bar.finish();
                let bytes = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
                eprintln!(
                    "{label}: {:.1} MB in {:.1} s",
                    bytes as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Some(why) => {
                failures += 1;
                if failures > RETRIES {
                    bar.abandon();
                    bail!(
                        "{url}: {why}; gave up after {RETRIES} resumptions (what arrived is kept \
                         in {}: run the command again to resume)",
                        part.display()
                    );
                }
                tracing::warn!("{url}: {why}; resuming");
                eprintln!("{label}: {why}; resuming");
                std::thread::sleep(Duration::from_millis(200 * failures as u64));
            }
        }
    }
}
