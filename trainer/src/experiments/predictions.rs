//! The files of a trial's units: `predictions.csv` (each system's prediction and the unit's
//! references, a row per test unit) and `test-units.csv`, read back by `rescore`, `sweep-lambda`
//! and `compare-splits`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use milan_shared::NeuronId;
use milan_shared::atomic;

use crate::corpus::Corpus;

/// One test unit's predictions.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) position: usize,
    /// The prediction of each system, by name.
    pub(crate) predictions: BTreeMap<String, String>,
}

/// Each system's predictions, for the systems that predicted for every row.
pub(crate) fn predictions_by_system(rows: &[Row]) -> BTreeMap<String, Vec<String>> {
    let mut hyps = BTreeMap::new();
    if let Some(first) = rows.first() {
        for system in first.predictions.keys() {
            if rows.iter().all(|r| r.predictions.contains_key(system)) {
                hyps.insert(
                    system.clone(),
                    rows.iter().map(|r| r.predictions[system].clone()).collect(),
                );
            }
        }
    }
    hyps
}

/// Reads a unit list (`model,layer,unit` header), as `test-units.csv` and a trial's
/// `predictions.csv` hold them.
pub fn read_units(path: &Path) -> Result<Vec<NeuronId>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers()?.clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no {name} column", path.display()))
    };
    let (m, l, u) = (column("model")?, column("layer")?, column("unit")?);
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}:{line}", path.display()))?;
        let key = row[m]
            .parse()
            .with_context(|| format!("{}:{line}: field model", path.display()))?;
        let unit = row[u]
            .parse()
            .with_context(|| format!("{}:{line}: field unit", path.display()))?;
        out.push(NeuronId::new(key, &row[l], unit));
    }
    Ok(out)
}

pub(crate) fn write_units(path: &Path, units: &[NeuronId]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["model", "layer", "unit"])?;
    for n in units {
        w.write_record([n.key.to_string(), n.layer.clone(), n.unit.to_string()])?;
    }
    atomic::write(path, &w.into_inner()?)
}

/// The columns of a predictions file after its unit, by system.
pub const PREDICTION_COLUMNS: [(&str, &str); 6] = [
    ("prediction", "milan-pmi"),
    ("captioner_beam", "captioner-beam"),
    ("captioner_greedy", "captioner-greedy"),
    ("nearest_neighbour", "nearest-neighbour"),
    ("netdissect", "netdissect"),
    ("compexp", "compexp"),
];

pub(crate) fn predictions_header(with_trial: bool) -> Vec<&'static str> {
    let mut h = Vec::new();
    if with_trial {
        h.push("trial");
    }
    h.extend(["model", "layer", "unit"]);
    h.extend(PREDICTION_COLUMNS.iter().map(|(c, _)| *c));
    h.extend(["reference_1", "reference_2", "reference_3"]);
    h
}

pub(crate) fn write_rows(
    w: &mut csv::Writer<Vec<u8>>,
    corpus: &Corpus,
    rows: &[Row],
    trial: Option<usize>,
) -> Result<()> {
    for r in rows {
        let n = &corpus.neurons[r.position];
        let mut record: Vec<String> = Vec::new();
        if let Some(t) = trial {
            record.push(t.to_string());
        }
        record.extend([
            n.id.key.to_string(),
            n.id.layer.clone(),
            n.id.unit.to_string(),
        ]);
        for (_, system) in PREDICTION_COLUMNS {
            record.push(r.predictions.get(system).cloned().unwrap_or_default());
        }
        for i in 0..3 {
            record.push(n.descriptions.get(i).cloned().unwrap_or_default());
        }
        w.write_record(&record)?;
    }
    Ok(())
}

pub(crate) fn write_predictions(
    path: &Path,
    corpus: &Corpus,
    rows: &[Row],
    trial: Option<usize>,
) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(predictions_header(trial.is_some()))?;
    write_rows(&mut w, corpus, rows, trial)?;
    atomic::write(path, &w.into_inner()?)
}

pub(crate) fn write_all_predictions(
    path: &Path,
    corpus: &Corpus,
    trials: &[(usize, Vec<Row>)],
) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(predictions_header(true))?;
    for (t, rows) in trials {
        write_rows(&mut w, corpus, rows, Some(*t))?;
    }
    atomic::write(path, &w.into_inner()?)
}
