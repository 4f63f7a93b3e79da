//! `trainer describe --pretrained`: the authors' released MILAN describing a network's units,
//! from its exemplars (through the checkpoint's encoder) or from precomputed features.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Device, Tensor, TensorData};
use milan_trainer::corpora::released::checkpoint::{Pretrained, resolve};
use milan_trainer::corpora::released::decode::{self, Decoded};
use milan_trainer::corpus::Corpus;

use super::DescribeArgs;

/// Neurons decoded together (beam x neurons rows per step; bounds memory).
const NEURONS_PER_BATCH: usize = 16;

/// Neurons decoded together and where their features come from.
struct Batch {
    /// (layer, unit) of each neuron.
    rows: Vec<(String, String)>,
    from: From,
}

enum From {
    /// Units `first..first + rows` of a features file.
    File { layer: usize, first: usize },
    /// Positions in the corpus computed through the encoder.
    Corpus(Vec<usize>),
}

/// One layer's features: its name and [units, k, d] values.
struct LayerFeatures {
    layer: String,
    units: usize,
    k: usize,
    values: Vec<f32>,
}

/// `dir/<layer>.npy` files, by layer name.
fn read_feature_dir(dir: &Path, feature_dim: usize) -> Result<Vec<LayerFeatures>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "{}: no <layer>.npy files", dir.display());
    files
        .iter()
        .map(|path| {
            let a: ndarray::Array3<f32> = ndarray_npy::read_npy(path).with_context(|| {
                format!(
                    "{}: expected float32 features of shape (units, 15, {feature_dim})",
                    path.display()
                )
            })?;
            let (units, k, d) = a.dim();
            ensure!(
                d == feature_dim,
                "{}: features of size {d}, but the checkpoint's decoder reads {feature_dim}",
                path.display()
            );
            let layer = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let values = a.as_standard_layout().iter().copied().collect();
            Ok(LayerFeatures {
                layer,
                units,
                k,
                values,
            })
        })
        .collect()
}

pub fn run(args: &DescribeArgs) -> Result<()> {
    let device = milan_trainer::util::backend::device(&args.features.backend)?;
    let name = args.pretrained.as_deref().context("--pretrained")?;
    let path = resolve(name, &args.url_base)?;
    let model = Pretrained::load(&path, &device)?;
    let length = model.defaults.length;
    let beam = args.beam.unwrap_or(model.defaults.beam);
    let temperature = args.lambda.unwrap_or(model.defaults.temperature);
    let strategy = if args.greedy {
        "greedy"
    } else {
        model.defaults.strategy.as_str()
    };
    if strategy != "greedy" {
        ensure!(
            matches!(strategy, "rerank" | "beam"),
            "{}: the checkpoint's strategy {strategy:?} is not supported (rerank, beam; or \
             --greedy)",
            path.display()
        );
        ensure!(
            beam >= 1 && beam <= model.vocab.len(),
            "--beam {beam}: the beam must be between 1 and the vocabulary's {} tokens",
            model.vocab.len()
        );
    }

    // The batches to decode; each batch's features are made only when it is decoded.
    let mut files: Vec<LayerFeatures> = Vec::new();
    let mut corpus: Option<Corpus> = None;
    let mut batches: Vec<Batch> = Vec::new();
    if let Some(dir) = &args.feature_dir {
        files = read_feature_dir(dir, model.feature_dim)?;
        for (layer, lf) in files.iter().enumerate() {
            for first in (0..lf.units).step_by(NEURONS_PER_BATCH) {
                let n = NEURONS_PER_BATCH.min(lf.units - first);
                batches.push(Batch {
                    rows: (first..first + n)
                        .map(|u| (lf.layer.clone(), u.to_string()))
                        .collect(),
                    from: From::File { layer, first },
                });
            }
        }
    } else {
        let data = args.data.as_deref().context("--data or --features")?;
        let c = corpus_through_encoder(&model, args, data, &device)?;
        let mut by_layer: Vec<(&str, Vec<usize>)> = Vec::new();
        for (p, n) in c.neurons.iter().enumerate() {
            match by_layer.last_mut() {
                Some((l, ps)) if *l == n.id.layer => ps.push(p),
                _ => by_layer.push((&n.id.layer, vec![p])),
            }
        }
        for (_, positions) in by_layer {
            for chunk in positions.chunks(NEURONS_PER_BATCH) {
                batches.push(Batch {
                    rows: chunk
                        .iter()
                        .map(|&p| {
                            let n = &c.neurons[p];
                            (n.id.layer.clone(), n.id.unit.to_string())
                        })
                        .collect(),
                    from: From::Corpus(chunk.to_vec()),
                });
            }
        }
        corpus = Some(c);
    }
    let units: usize = batches.iter().map(|b| b.rows.len()).sum();

    let bar = super::describe_bar(units);
    let started = std::time::Instant::now();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["layer", "unit", "description"])?;
    for batch in &batches {
        let features = match &batch.from {
            From::File { layer, first } => {
                let lf = &files[*layer];
                let row = lf.k * model.feature_dim;
                let n = batch.rows.len();
                Tensor::from_data(
                    TensorData::new(
                        lf.values[first * row..(first + n) * row].to_vec(),
                        [n, lf.k, model.feature_dim],
                    ),
                    &device,
                )
            }
            From::Corpus(positions) => corpus
                .as_ref()
                .expect("batches of a corpus")
                .features(positions, &device),
        };
        let decoded: Vec<Decoded> = match strategy {
            "greedy" => decode::greedy(&model.captioner, features, length),
            "beam" => decode::beam_search(&model.captioner, features, beam, length)
                .into_iter()
                .map(|b| b.into_iter().next().expect("a full beam"))
                .collect(),
            _ => decode::rerank(
                &model.captioner,
                &model.lm,
                features,
                beam,
                length,
                temperature,
            ),
        };
        for ((layer, unit), d) in batch.rows.iter().zip(decoded) {
            w.write_record([
                layer.as_str(),
                unit.as_str(),
                &decode::reconstruct(&model.vocab, &d.tokens),
            ])?;
        }
        bar.inc(batch.rows.len() as u64);
    }
    bar.finish_and_clear();
    super::report_rate(units, started, strategy);
    super::write_descriptions(
        args,
        &w.into_inner()?,
        units,
        &format!("{} ({strategy})", path.display()),
        &format!("MILAN {name}"),
    )
}

/// The exemplars of `data` through the checkpoint's encoder (a ResNet pyramid), with
/// torchvision's weights: --weights, or the registered asset (`trainer assets fetch resnet101
/// --from FILE`).
fn corpus_through_encoder(
    model: &Pretrained,
    args: &DescribeArgs,
    data: &Path,
    device: &Device,
) -> Result<Corpus> {
    let (encoder, dims) = model.encoder.featurizer()?;
    if dims != model.feature_dim {
        bail!(
            "the checkpoint's decoder reads {}-wide features, but its encoder {} makes {dims}",
            model.feature_dim,
            model.encoder.config
        );
    }
    let mut source = args.features.source();
    source.encoder = encoder.to_owned();
    let corpus = Corpus::load(data, &source, true, device)?;
    ensure!(
        corpus.dims == model.feature_dim,
        "{}: features of size {}, but the checkpoint reads {}",
        data.display(),
        corpus.dims,
        model.feature_dim
    );
    Ok(corpus)
}
