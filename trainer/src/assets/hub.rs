//! Models from the Hugging Face Hub, fetched at a pinned revision: the paper's BERTScore model
//! (roberta-large) is on no package registry.
//!
//! The revision is a commit id, so what it names never changes on the hub. Before downloading,
//! the hub's API lists that revision's files with their sizes and content hashes (`GET
//! /api/models/<repo>/revision/<commit>?blobs=true`: the SHA-256 of every LFS file, the git blob
//! id of the others); each file is then downloaded from `/<repo>/resolve/<commit>/<file>`,
//! resumable ([`crate::assets::download`]: a `.part` file continued with a range request, in
//! the same run after a dropped connection and in the next run after a killed one), and checked
//! against that hash and size before it is kept. Files are gathered in
//! `<assets>/.<name>.download/` and the folder is renamed into place whole, so an interrupted
//! fetch leaves no half-made model.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use sha1::Digest as _;

/// Where the hub lives; `--url-base` replaces it (a mirror, or a test's local server).
pub const DEFAULT_URL_BASE: &str = "https://huggingface.co";

/// A model folder at a pinned revision.
#[derive(Debug, Clone, Copy)]
pub struct HubModel {
    pub repo: &'static str,
    /// A commit id of the repository.
    pub revision: &'static str,
    pub files: &'static [&'static str],
}

/// One file as the hub lists it.
#[derive(Debug, Clone, Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "blobId", default)]
    blob_id: Option<String>,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Debug, Clone, Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct Listing {
    #[serde(default)]
    sha: Option<String>,
    siblings: Vec<Sibling>,
}

/// The hash a file must have: the SHA-256 of its bytes (LFS files), or git's blob id, the SHA-1
/// of `blob <size>\0` and its bytes (files kept in git).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Sha256(String),
    GitBlob(String),
}

impl Expected {
    fn matches(&self, path: &Path) -> Result<(bool, String)> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata()?.len();
        let mut buf = vec![0u8; 1 << 20];
        let digest = match self {
            Expected::Sha256(_) => {
                let mut h = sha2::Sha256::new();
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    sha2::Digest::update(&mut h, &buf[..n]);
                }
                hex::encode(sha2::Digest::finalize(h))
            }
            Expected::GitBlob(_) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                hex::encode(h.finalize())
            }
        };
        let want = match self {
            Expected::Sha256(s) | Expected::GitBlob(s) => s,
        };
        Ok((digest.eq_ignore_ascii_case(want), digest))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// The revision's listing of `model.files`: (name, size, expected hash) each.
fn listing(model: &HubModel, url_base: &str) -> Result<Vec<(String, u64, Expected)>> {
    let url = format!(
        "{}/api/models/{}/revision/{}?blobs=true",
        url_base.trim_end_matches('/'),
        model.repo,
        model.revision
    );
    let mut response = agent()
        .get(&url)
        .call()
        .with_context(|| format!("asking the hub for {}'s files ({url})", model.repo))?;
    let status = response.status().as_u16();
    ensure!(
        status == 200,
        "{url}: the hub answered {status}; check --url-base and that the revision exists"
    );
    let listing: Listing = response
        .body_mut()
        .read_json()
        .with_context(|| format!("{url}: not the hub's listing of a model revision"))?;
    if let Some(sha) = &listing.sha {
        ensure!(
            sha == model.revision,
            "{url}: the hub lists revision {sha}, not the pinned {}",
            model.revision
        );
    }
    model
        .files
        .iter()
        .map(|name| {
            let s = listing
                .siblings
                .iter()
                .find(|s| s.rfilename == *name)
                .with_context(|| {
                    format!("{url}: {} at {} has no {name}", model.repo, model.revision)
                })?;
            let (size, expected) = match (&s.lfs, &s.blob_id) {
                (Some(lfs), _) => (lfs.size, Expected::Sha256(lfs.sha256.clone())),
                (None, Some(blob)) => (
                    s.size
                        .with_context(|| format!("{url}: no size for {name}"))?,
                    Expected::GitBlob(blob.clone()),
                ),
                (None, None) => bail!("{url}: no hash for {name} (was ?blobs=true ignored?)"),
            };
            Ok(((*name).to_owned(), size, expected))
        })
        .collect()
}

/// Downloads every file of `model` into `staging` (resuming what is there), each checked;
/// returns each file's name and hash as the hub publishes it.
pub fn download(
    model: &HubModel,
    url_base: &str,
    staging: &Path,
) -> Result<Vec<(String, Expected)>> {
    std::fs::create_dir_all(staging).with_context(|| format!("creating {}", staging.display()))?;
    let files = listing(model, url_base)?;
    let mut out = Vec::new();
    for (name, size, expected) in files {
        let done = staging.join(&name);
        let part = staging.join(format!("{name}.part"));
        let whole = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.len() == size);
        if !(whole(&done) && expected.matches(&done)?.0) {
            let _ = std::fs::remove_file(&done);
            let url = format!(
                "{}/{}/resolve/{}/{name}",
                url_base.trim_end_matches('/'),
                model.repo,
                model.revision
            );
            crate::assets::download::download(&url, &part)?;
            let got = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
            let (ok, digest) = expected.matches(&part)?;
            if got != size || !ok {
                // A damaged file must not be resumed or reused by the next run.
                let _ = std::fs::remove_file(&part);
                bail!(
                    "{name}: {got} bytes with hash {digest}, but the hub lists {size} bytes with \
                     {expected:?} for {} at {}: refused and deleted; run the command again",
                    model.repo,
                    model.revision
                );
            }
            std::fs::rename(&part, &done)
                .with_context(|| format!("moving {} into place", part.display()))?;
        }
        out.push((name, expected));
    }
    Ok(out)
}

/// The staging folder of an asset: kept between runs so that downloads resume.
pub fn staging_dir(assets: &Path, name: &str) -> PathBuf {
    assets.join(format!(".{name}.download"))
}
