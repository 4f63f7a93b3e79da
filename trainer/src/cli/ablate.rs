//! `trainer ablate`: a classifier with chosen units switched off against the intact one, on the
//! same images ([`milan_trainer::applications::ablation`]).

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use milan_shared::atomic;
use milan_shared::progress::Progress;
use milan_trainer::applications::ablation::{self, Classifier, Off, Outcome};
use milan_trainer::applications::analysis::{self, Concept};

#[derive(Debug, clap::Args)]
pub struct AblateArgs {
    /// The classifier: efficientnet-lite0 (layers _blocks.0-15) or resnet18 ... resnet152
    /// (conv1, layer1-4), with ImageNet weights; or a model.onnx whose first output is
    /// [N, classes] (layers: node names or module paths, as `trainer layers` lists them).
    #[arg(long, default_value = "efficientnet-lite0")]
    model: String,
    /// Its weights (default for efficientnet-lite0: the asset; required for a ResNet).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The units: a CSV as `trainer describe` writes it (layer,unit,description).
    #[arg(long)]
    units: PathBuf,
    /// Only the units with a description mentioning one of these words (comma-separated; plurals
    /// and phrases as in `trainer audit`).
    #[arg(long)]
    matching: Option<String>,
    /// A folder of images (png, jpg).
    #[arg(long)]
    images: PathBuf,
    /// A CSV `image,label` (file name, ImageNet class index). Without it, the ablated network is
    /// compared with the intact one's own top-1.
    #[arg(long)]
    labels: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Also write the outcome as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    onnx: super::exemplars::OnnxArgs,
}

pub fn run(args: &AblateArgs) -> Result<()> {
    let described = analysis::read_descriptions(&args.units)?;
    let matching = args.matching.as_deref().map(|m| Concept::new(m, &[]));
    let units = ablation::chosen_units(&described, matching.as_ref());
    ensure!(
        !units.is_empty(),
        "{}: no unit's description mentions {}",
        args.units.display(),
        args.matching.as_deref().unwrap_or("anything")
    );
    let images = image_files(&args.images)?;
    let labels = args
        .labels
        .as_deref()
        .map(ablation::read_labels)
        .transpose()?;
    let device = Device::flex();
    let weights = match &args.weights {
        Some(w) => Some(w.clone()),
        None if args.model == "efficientnet-lite0" => Some(super::classify::default_weights()?),
        None if args.model.ends_with(".onnx") => None,
        None => bail!(
            "--model {} needs --weights (its ImageNet weights)",
            args.model
        ),
    };
    let model = Classifier::load(
        &args.model,
        weights.as_deref(),
        &args.onnx.spec()?,
        args.onnx.threads(),
        &device,
    )?;
    let off = model.units(&units)?;
    let progress = Progress::new(images.len(), "ablate", "images");
    let mut rows = Vec::with_capacity(images.len());
    for chunk in images.chunks(args.batch.max(1)) {
        let x = model.batch(chunk)?;
        let intact = model.top1(x.clone(), chunk.len(), &Off::none(), &device)?;
        let ablated = model.top1(x, chunk.len(), &off, &device)?;
        for (i, path) in chunk.iter().enumerate() {
            let label = match &labels {
                Some(l) => {
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                    *name.as_ref().and_then(|n| l.get(n)).with_context(|| {
                        format!(
                            "{}: no label for {}",
                            args.labels.as_ref().expect("some").display(),
                            path.display()
                        )
                    })?
                }
                None => intact[i],
            };
            rows.push((label, intact[i], ablated[i]));
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    let outcome = Outcome::of(&rows, labels.is_some());
    let against = if outcome.against_labels {
        "the labels"
    } else {
        "the intact network's top-1"
    };
    println!(
        "{} units off in {} layers; {} images; accuracy against {against}: intact {:.1}%, \
         ablated {:.1}%; {} predictions changed",
        units.len(),
        off.layers(),
        outcome.images,
        outcome.intact_accuracy * 100.0,
        outcome.ablated_accuracy * 100.0,
        outcome.changed
    );
    println!("class\timages\tintact\tablated");
    for c in &outcome.per_class {
        println!(
            "{}\t{}\t{}\t{}",
            c.class, c.images, c.intact_correct, c.ablated_correct
        );
    }
    if let Some(out) = &args.out {
        let json = serde_json::json!({
            "model": args.model,
            "units": units,
            "matching": args.matching,
            "outcome": outcome,
        });
        atomic::write(out, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    Ok(())
}

fn image_files(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| ["png", "jpg", "jpeg"].contains(&x.to_lowercase().as_str()))
        })
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "{}: no png or jpg images", dir.display());
    Ok(files)
}
