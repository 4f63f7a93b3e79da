//! `trainer classify`: EfficientNet-Lite0's top-5 ImageNet classes for images.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use burn::tensor::activation::softmax;
use indicatif::{ProgressBar, ProgressStyle};
use milan_networks::efficientnet::{EfficientNetLite0, preprocess};
use milan_networks::image_batch;
use milan_networks::imagenet::Classes;
use milan_trainer::assets;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    /// The weights (default: the `efficientnet-lite0` asset).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// One JSON object per line: {"image", "top5", "logits"} with all 1000 logits.
    #[arg(long)]
    json: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Image files (PNG or JPEG); other sizes than 224x224 are resized bilinearly first.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn default_weights() -> Result<PathBuf> {
    let file = assets::path("efficientnet-lite0")?.join("efficientnet-lite0-57934424.pth");
    anyhow::ensure!(
        file.is_file(),
        "no weights at {}: run `trainer assets fetch efficientnet-lite0`, or pass --weights",
        file.display()
    );
    Ok(file)
}

pub fn run(args: &ClassifyArgs) -> Result<()> {
    let device = Device::flex();
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => default_weights()?,
    };
    let model = EfficientNetLite0::load(&weights, &device)?;
    // Names are a convenience: without the asset, classes are shown by index.
    let classes = Classes::load(&assets::path("imagenet-classes")?).ok();
    if classes.is_none() && !args.json {
        eprintln!("(class names: run `trainer assets fetch imagenet-classes`)");
    }
    let bar = if args.images.len() > args.batch {
        ProgressBar::new(args.images.len() as u64).with_style(
            ProgressStyle::with_template("{spinner} classify {bar:40} {pos}/{len} {elapsed}")
                .expect("valid template"),
        )
    } else {
        ProgressBar::hidden()
    };
    for chunk in args.images.chunks(args.batch.max(1)) {
        let n = chunk.len();
        let x = image_batch(chunk, preprocess, &device)?;
        let logits = model.forward(x, &[]).logits;
        let probs = softmax(logits.clone(), 1)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let logits = logits
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for (i, path) in chunk.iter().enumerate() {
            let p = &probs[i * 1000..(i + 1) * 1000];
            let mut order: Vec<usize> = (0..1000).collect();
            order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
            let top5: Vec<_> = order[..5]
                .iter()
                .map(|&c| {
                    let name = classes.as_ref().map(|k| k.names[c].clone());
                    json!({"class": c, "name": name, "probability": p[c]})
                })
                .collect();
            bar.suspend(|| {
                if args.json {
                    println!(
                        "{}",
                        json!({"image": path.display().to_string(), "top5": top5, "logits": &logits[i * 1000..(i + 1) * 1000]})
                    );
                } else {
                    println!("{}", path.display());
                    for t in &top5 {
                        let name = t["name"].as_str().map_or_else(
                            || format!("class {}", t["class"]),
                            |n| format!("{n} ({})", t["class"]),
                        );
                        println!(
                            "  {:>5.1}%  {name}",
                            t["probability"].as_f64().unwrap_or(0.0) * 100.0
                        );
                    }
                }
            });
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(())
}
