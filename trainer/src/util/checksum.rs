//! SHA-256 of files, read in 1 MiB blocks (what the downloads and the asset checks compare).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};

/// The SHA-256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    sha256_file_with(path, &ProgressBar::hidden())
}

/// The SHA-256 of a file, counting the bytes read on `bar`.
pub fn sha256_file_with(path: &Path, bar: &ProgressBar) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    Ok(hex::encode(hasher.finalize()))
}
