//! `trainer score`: BLEU (as sacrebleu) of hypothesis lines against reference streams.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use milan_metrics::bleu::{BleuConfig, corpus_bleu, signature};
use milan_metrics::normalize;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Metric {
    Bleu,
    Bertscore,
    All,
}

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    #[arg(long, value_enum, default_value = "all")]
    pub metric: Metric,
    /// One hypothesis per line.
    #[arg(long)]
    pub hyps: PathBuf,
    /// A reference stream: one reference per line, line i for hypothesis i. Repeat for several.
    #[arg(long = "refs", required = true)]
    pub refs: Vec<PathBuf>,
    /// Score the text as it is, without MILAN's normalisation (lowercase, strip '. ').
    #[arg(long)]
    pub no_normalize: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn read_lines(path: &Path, what: &str) -> Result<Vec<String>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        anyhow::anyhow!("{}:{line}: not valid UTF-8", path.display())
    })?;
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if let Some(i) = lines.iter().position(|l| l.trim().is_empty()) {
        bail!(
            "{}:{}: empty line; every {what} line needs text",
            path.display(),
            i + 1
        );
    }
    if lines.is_empty() {
        bail!("{}: no lines", path.display());
    }
    Ok(lines)
}

pub fn run(args: &ScoreArgs) -> Result<()> {
    if matches!(args.metric, Metric::Bertscore | Metric::All) {
        bail!(
            "BERTScore is not available in this build yet; use --metric bleu \
             (BERTScore arrives with the metrics issue's encoder)"
        );
    }
    let prepare = |s: &str| {
        if args.no_normalize {
            s.to_owned()
        } else {
            normalize(s)
        }
    };
    let hyps: Vec<String> = read_lines(&args.hyps, "hypothesis")?
        .iter()
        .map(|s| prepare(s))
        .collect();
    let mut streams = Vec::new();
    for path in &args.refs {
        let lines = read_lines(path, "reference")?;
        if lines.len() != hyps.len() {
            bail!(
                "{} has {} lines but {} has {}: every reference stream needs one line per hypothesis",
                path.display(),
                lines.len(),
                args.hyps.display(),
                hyps.len()
            );
        }
        streams.push(lines);
    }
    let refs: Vec<Vec<String>> = (0..hyps.len())
        .map(|i| streams.iter().map(|s| prepare(&s[i])).collect())
        .collect();
    let config = BleuConfig::default();
    let bleu = corpus_bleu(&hyps, &refs, &config);
    if args.json {
        println!(
            "{}",
            json!({
                "bleu": {
                    "score": bleu.score,
                    "precisions": bleu.precisions,
                    "bp": bleu.bp,
                    "signature": signature(&config, streams.len()),
                    "line": bleu.line(),
                }
            })
        );
    } else {
        println!("{}", bleu.line());
        println!("{}", signature(&config, streams.len()));
    }
    Ok(())
}
