//! `trainer synth`: the synthetic MILANNOTATIONS corpus.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use milan_shared::ModelKey;
use milan_synth::SynthConfig;

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Root folder; each key is written to <out>/<arch>/<dataset>, replacing what is there.
    #[arg(long)]
    out: PathBuf,
    /// Units per layer (capped at the layer's real width).
    #[arg(long, default_value_t = 20)]
    units_per_layer: usize,
    /// Side of the square exemplar images in pixels (MILANNOTATIONS uses 224).
    #[arg(long, default_value_t = 64)]
    image_size: usize,
    /// Seed; the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only these keys (comma-separated arch/dataset); all seven by default.
    #[arg(long, value_delimiter = ',')]
    keys: Vec<ModelKey>,
    /// Also write a PNG of the first N units of every key as a worker sees them, under
    /// <out>/preview/.
    #[arg(long, default_value_t = 0)]
    preview: usize,
}

pub fn run(args: SynthArgs) -> Result<()> {
    let mut config = SynthConfig {
        units_per_layer: args.units_per_layer,
        image_size: args.image_size,
        seed: args.seed,
        ..SynthConfig::default()
    };
    if !args.keys.is_empty() {
        config.keys = args.keys;
    }
    let total = milan_synth::total_units(&config);
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} synth {bar:40} {pos}/{len} units {elapsed} (eta {eta})",
        )
        .expect("valid template"),
    );
    let started = Instant::now();
    let summary = milan_synth::generate(&args.out, &config, &|| bar.inc(1))
        .with_context(|| format!("generating the synthetic corpus in {}", args.out.display()))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    println!(
        "synthetic MILANNOTATIONS in {} (seed {}, {} units per layer, {}x{} px)",
        args.out.display(),
        config.seed,
        config.units_per_layer,
        config.image_size,
        config.image_size
    );
    print!("{}", summary.table());
    println!(
        "{} keys, {} units, {} descriptions, {:.1} MB, in {:.1?}",
        summary.keys.len(),
        summary.units(),
        summary.units() * 3,
        summary.bytes() as f64 / 1e6,
        elapsed
    );
    if args.preview > 0 {
        let dir = args.out.join("preview");
        let written = crate::cli::preview::write_previews(&summary, args.preview, &dir)?;
        println!("{} previews in {}", written, dir.display());
    }
    Ok(())
}
