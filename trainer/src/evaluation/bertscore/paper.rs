//! The paper's BERTScore model, roberta-large (bert_score's `lang='en'` default), fetched from
//! the Hugging Face Hub at a pinned commit with bert_score's own rescale baseline beside it.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, ensure};

use crate::assets::{COMPLETE, assets_dir, download_wheel};

/// The paper's BERTScore model: bert_score's `lang='en'` default, fetched from the Hugging Face
/// Hub (no package registry carries it) with bert_score's own rescale baseline beside it.
pub const ROBERTA_LARGE: &str = "roberta-large";

/// roberta-large at a pinned commit of the hub (the files bert_score's `AutoModel` and fast
/// tokenizer read).
pub const ROBERTA_LARGE_HUB: crate::assets::hub::HubModel = crate::assets::hub::HubModel {
    repo: "FacebookAI/roberta-large",
    revision: "722cf37b1afa9454edce342e7895e588b6ff1d59",
    files: &["config.json", "tokenizer.json", "model.safetensors"],
};

/// bert_score 0.3.13's wheel on PyPI, which ships the rescale baselines bert_score computed on
/// Common Crawl: `roberta-large.tsv` is the paper's.
const BERT_SCORE_WHEEL: (&str, &str, &str) = (
    "bert-score",
    "0.3.13",
    "bbbb4c7fcdaa46d7681aff49f37f96faa09ed74e1b150e659bdc6b58a66989b9",
);
const BERT_SCORE_BASELINE: &str = "bert_score/rescale_baseline/en/roberta-large.tsv";

/// What a fetched roberta-large records in its `.complete`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct HubRecord {
    repo: String,
    revision: String,
    url_base: String,
    /// File name -> the hash the hub publishes for it (`sha256:...` or `git-blob:...`).
    files: std::collections::BTreeMap<String, String>,
    baseline: String,
}

/// Where roberta-large lives in the assets dir (whether or not it is fetched).
pub fn dir() -> PathBuf {
    assets_dir().join(ROBERTA_LARGE)
}

/// Whether roberta-large is fetched and complete, at the pinned revision.
pub fn is_fetched() -> bool {
    std::fs::read(dir().join(COMPLETE))
        .ok()
        .and_then(|b| serde_json::from_slice::<HubRecord>(&b).ok())
        .is_some_and(|r| r.revision == ROBERTA_LARGE_HUB.revision)
}

/// Fetches roberta-large from the hub at `url_base` (the real hub, a mirror, or a test server)
/// and bert_score's baseline for it from PyPI, checks both, and moves the folder into
/// `<assets>/roberta-large` whole; does nothing when it is already there.
pub fn fetch(url_base: &str) -> Result<PathBuf> {
    let root = assets_dir();
    let target = root.join(ROBERTA_LARGE);
    if is_fetched() {
        println!("{ROBERTA_LARGE}: already in {}", target.display());
        return Ok(target);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let staging = crate::assets::hub::staging_dir(&root, ROBERTA_LARGE);
    println!(
        "{ROBERTA_LARGE}: downloading {} at {} from {url_base} (about 1.4 GB; resumes if \
         interrupted)",
        ROBERTA_LARGE_HUB.repo, ROBERTA_LARGE_HUB.revision
    );
    let files = crate::assets::hub::download(&ROBERTA_LARGE_HUB, url_base, &staging)?;
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(staging.join("config.json"))?)
            .context("roberta-large's config.json is not JSON")?;
    ensure!(
        config["model_type"] == "roberta",
        "roberta-large's config.json says model_type {}, not roberta",
        config["model_type"]
    );

    // bert_score's baseline, from its wheel.
    let scratch = root.join(format!(".{ROBERTA_LARGE}.wheel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let baseline = (|| -> Result<()> {
        let (package, version, sha) = BERT_SCORE_WHEEL;
        println!("{ROBERTA_LARGE}: bert_score's rescale baseline from {package}=={version} (PyPI)");
        let wheel = download_wheel(package, version, sha, &scratch)?;
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
            .with_context(|| format!("{}: not a zip archive", wheel.display()))?;
        let mut entry = archive
            .by_name(BERT_SCORE_BASELINE)
            .with_context(|| format!("{}: no {BERT_SCORE_BASELINE}", wheel.display()))?;
        let mut text = String::new();
        entry.read_to_string(&mut text)?;
        let path = staging.join(super::baseline::FILE);
        std::fs::write(&path, &text)?;
        super::score::read_baseline(&path, super::ROBERTA_LARGE_LAYER)
            .context("bert_score's roberta-large baseline")?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    baseline?;

    let record = HubRecord {
        repo: ROBERTA_LARGE_HUB.repo.to_owned(),
        revision: ROBERTA_LARGE_HUB.revision.to_owned(),
        url_base: url_base.to_owned(),
        files: files
            .into_iter()
            .map(|(name, hash)| {
                let h = match hash {
                    crate::assets::hub::Expected::Sha256(s) => format!("sha256:{s}"),
                    crate::assets::hub::Expected::GitBlob(s) => format!("git-blob:{s}"),
                };
                (name, h)
            })
            .collect(),
        baseline: format!(
            "{}=={} {BERT_SCORE_BASELINE}",
            BERT_SCORE_WHEEL.0, BERT_SCORE_WHEEL.1
        ),
    };
    std::fs::write(staging.join(COMPLETE), serde_json::to_vec_pretty(&record)?)?;
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .with_context(|| format!("replacing {}", target.display()))?;
    }
    std::fs::rename(&staging, &target)
        .with_context(|| format!("moving into {}", target.display()))?;
    println!(
        "{ROBERTA_LARGE}: {} files and bert_score's baseline in {}",
        ROBERTA_LARGE_HUB.files.len(),
        target.display()
    );
    Ok(target)
}
