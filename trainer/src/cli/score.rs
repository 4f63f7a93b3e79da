//! `trainer score`: BLEU (as sacrebleu), ROUGE (as the PyPI package rouge 1.0.1, paired as
//! MILAN pairs it) and BERTScore (as bert_score) of hypothesis lines against reference streams.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use milan_metrics::bleu::{BleuConfig, corpus_bleu, signature};
use milan_metrics::normalize;
use milan_trainer::evaluation::bertscore::score::read_baseline;
use milan_trainer::evaluation::bertscore::{BertScorer, ScorerOptions};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Metric {
    Bleu,
    Rouge,
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
    /// A Hugging Face model folder (config.json, model.safetensors, tokenizer.json); the fetched
    /// all-MiniLM-L6-v2 by default (`trainer assets fetch minilm`).
    #[arg(long)]
    pub bertscore_model: Option<PathBuf>,
    /// Layers of the model to use (bert_score's num_layers); all by default.
    #[arg(long)]
    pub num_layers: Option<usize>,
    /// Weight tokens by idf computed on the references.
    #[arg(long)]
    pub idf: bool,
    /// Rescale with a baseline file in bert_score's format (LAYER,P,R,F rows).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
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
    let mut out = serde_json::Map::new();
    if matches!(args.metric, Metric::Bleu | Metric::All) {
        let config = BleuConfig::default();
        let bleu = corpus_bleu(&hyps, &refs, &config);
        if !args.json {
            println!("{}", bleu.line());
            println!("{}", signature(&config, streams.len()));
        }
        out.insert(
            "bleu".into(),
            json!({
                "score": bleu.score,
                "precisions": bleu.precisions,
                "bp": bleu.bp,
                "signature": signature(&config, streams.len()),
                "line": bleu.line(),
            }),
        );
    }
    if matches!(args.metric, Metric::Rouge | Metric::All) {
        // Each hypothesis with each of its references, averaged, empty sides skipped: MILAN's
        // `rouge` (src/utils/metrics.py).
        let rouge =
            milan_metrics::rouge::milan(&hyps, &refs).map_err(|e| anyhow::anyhow!("ROUGE: {e}"))?;
        if !args.json {
            for (name, s) in [
                ("ROUGE-1", rouge.rouge_1),
                ("ROUGE-2", rouge.rouge_2),
                ("ROUGE-L", rouge.rouge_l),
            ] {
                println!("{name} R = {:.4} P = {:.4} F = {:.4}", s.r, s.p, s.f);
            }
        }
        out.insert("rouge".into(), serde_json::to_value(rouge)?);
    }
    if matches!(args.metric, Metric::Bertscore | Metric::All) {
        let dir = match &args.bertscore_model {
            Some(dir) => dir.clone(),
            None => milan_trainer::assets::path("minilm")?,
        };
        let options = ScorerOptions {
            num_layers: args.num_layers,
            ..ScorerOptions::default()
        };
        let scorer = BertScorer::load(&dir, &options, &burn::tensor::Device::flex())?;
        let mut scores = scorer.score(&hyps, &refs, args.idf)?;
        if let Some(path) = &args.baseline {
            scores.rescale(read_baseline(path, scorer.num_layers())?);
        }
        let (p, r, f) = scores.means();
        if !args.json {
            println!(
                "BERTScore P = {p:.4} R = {r:.4} F = {f:.4} ({}, {} layers, idf {})",
                dir.display(),
                scorer.num_layers(),
                if args.idf { "on" } else { "off" }
            );
        }
        out.insert(
            "bertscore".into(),
            json!({ "P": p, "R": r, "F": f, "F_each": scores.f }),
        );
    }
    if args.json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}
