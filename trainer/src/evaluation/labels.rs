//! Baseline labels as the systems `netdissect` and `compexp` predict them: rendered as text the
//! way the reference's `experiments/baselines.py` renders NetDissect's and CompExp's result files,
//! and read from the files a user computed elsewhere (`--baseline-labels SYSTEM=FILE`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::LazyLock;

use anyhow::{Context, Result, bail, ensure};
use milan_shared::NeuronId;

/// The systems whose labels `--baseline-labels` may bring in.
pub const LABEL_SYSTEMS: [&str; 2] = ["netdissect", "compexp"];

/// Labels of units by system (`netdissect`, `compexp`), as `--baseline-labels NAME=FILE` reads
/// them.
pub type BaselineLabels = BTreeMap<String, HashMap<NeuronId, String>>;

/// Reads a `--baseline-labels` file for `system`: a CSV whose header names `model`, `layer`,
/// `unit` and `label` (in any order; other columns are ignored), one unit per row. Labels are
/// kept as written; they are rendered as the reference renders its baselines when scored.
pub fn read_baseline_labels(system: &str, path: &Path) -> Result<HashMap<NeuronId, String>> {
    ensure!(
        LABEL_SYSTEMS.contains(&system),
        "--baseline-labels {system}=...: the systems with labels are {}",
        LABEL_SYSTEMS.join(", ")
    );
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| {
                format!(
                    "{}: no {name} column (the header must name model, layer, unit and label)",
                    path.display()
                )
            })
    };
    let (m, l, u, t) = (
        column("model")?,
        column("layer")?,
        column("unit")?,
        column("label")?,
    );
    let mut out = HashMap::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}:{line}", path.display()))?;
        let field = |c: usize| row.get(c).unwrap_or("").trim();
        let key = field(m).parse().with_context(|| {
            format!(
                "{}:{line}: field model: {:?} is not arch/dataset",
                path.display(),
                field(m)
            )
        })?;
        let unit: u32 = field(u).parse().with_context(|| {
            format!(
                "{}:{line}: field unit: {:?} is not a unit number",
                path.display(),
                field(u)
            )
        })?;
        let id = NeuronId::new(key, field(l), unit);
        if out.insert(id.clone(), field(t).to_owned()).is_some() {
            bail!("{}:{line}: a second label for {id}", path.display());
        }
    }
    Ok(out)
}

/// A label as its baseline's system predicts it: rendered as the reference renders it, and
/// "none" where the unit has no label (NetDissect names no concept for a unit that overlaps
/// none).
pub(crate) fn baseline_text(system: &str, label: &str) -> String {
    let text = match system {
        "compexp" => render_compexp(label),
        _ => render_netdissect(label),
    };
    if text.trim().is_empty() {
        "none".to_owned()
    } else {
        text
    }
}

static SUFFIX: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\W+(s|t|c)($|\W+)").expect("a valid pattern"));

/// A CompExp label as the reference's baselines render it: lowercase, no parentheses, `-` and
/// `_` as spaces, Broden's category suffixes (`-s`, `-t`, `-c`) dropped, trimmed:
/// `(water-s OR river-s) AND NOT blue-c` -> `water or river and not blue`.
pub fn render_compexp(label: &str) -> String {
    let text = label
        .to_lowercase()
        .replace(['(', ')'], "")
        .replace(['-', '_'], " ");
    SUFFIX.replace_all(&text, " ").trim().to_owned()
}

/// A NetDissect label as the reference's baselines render it: the text before the first `-`
/// (`sky-s` -> `sky`).
pub fn render_netdissect(label: &str) -> String {
    label.split('-').next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_render_as_the_reference_renders_them() {
        assert_eq!(
            render_compexp("((water-s OR river-s) AND NOT blue-c)"),
            "water or river and not blue"
        );
        assert_eq!(
            render_compexp("(Street_Sign-o OR grass-t)"),
            "street sign o or grass"
        );
        assert_eq!(render_netdissect("sky-s"), "sky");
        assert_eq!(render_netdissect("none"), "none");
    }
}
