//! The `annotator` command line: one module per command, named after it (`requester-token` is
//! `requester_token`), and what they share: where the data lives ([`Storage`]), reading a
//! password, a public URL, and printing a reconciliation.

pub mod backup;
pub mod bench;
pub mod export;
pub mod import;
pub mod migrate;
pub mod mturk;
pub mod prolific;
pub mod qualification;
pub mod requester;
pub mod requester_token;
pub mod serve;
pub mod sessions;
pub mod worker;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use milan_annotator::db;
use milan_annotator::domain::{DAY_MS, MINUTE_MS, ProjectSettings, now_ms};
use milan_annotator::http::server::{self, ServeConfig};

/// Where the data lives.
#[derive(Debug, Args, Clone)]
pub struct Storage {
    /// Folder for the SQLite database and the exemplar images.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// postgres://... to use PostgreSQL (several server processes); SQLite in the data dir if absent.
    #[arg(long)]
    pub database_url: Option<String>,
}

pub fn parse_public_url(url: Option<&str>) -> Result<Option<milan_annotator::origin::PublicUrl>> {
    url.map(milan_annotator::origin::PublicUrl::parse)
        .transpose()
        .map_err(anyhow::Error::msg)
}

pub fn print_reconciliation(r: &milan_annotator::engine::external::Reconciliation) {
    println!(
        "{} verified, {} flagged, {} on the platform but not here, {} rejected",
        r.verified,
        r.flagged.len(),
        r.not_here.len(),
        r.rejected
    );
    for (id, why) in &r.flagged {
        println!("flagged {id}: {why}");
    }
    for (id, what) in &r.not_here {
        println!("not here {id}: {what}");
    }
}

/// A password from a file or standard input (first line, without its line ending).
pub fn read_password(file: Option<&std::path::Path>) -> Result<String> {
    let text = match file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line
        }
    };
    Ok(text.lines().next().unwrap_or("").to_owned())
}
