//! `trainer latents`: a reproducible latent dataset for a generator's exemplars
//! ([`milan_trainer::probing::latents`]).

use std::path::PathBuf;

use anyhow::Result;
use milan_trainer::probing::latents::{self, LatentSpec};

#[derive(Debug, clap::Args)]
pub struct LatentsArgs {
    /// Samples (rows); the reference drew 100,000 for BigGAN.
    #[arg(long)]
    count: usize,
    /// Size of each z (BigGAN: 128).
    #[arg(long)]
    dim: usize,
    /// Seed: the same seed writes the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// BigGAN's truncation trick: z is this times a normal cut to [-2, 2] (absent: plain normal,
    /// as the reference's `generate_biggan_zs.py`).
    #[arg(long)]
    truncation: Option<f64>,
    /// The generator input that takes z.
    #[arg(long, default_value = "z")]
    input: String,
    /// Class-conditional generators: draw a class id per sample, uniform over this many classes
    /// (BigGAN: 1000 for ImageNet, 365 for Places365).
    #[arg(long, requires = "class_input")]
    classes: Option<usize>,
    /// The generator input that takes the class (its file: Z.<NAME>.npy, int64 ids; a model
    /// taking one-hot vectors gets them made from the ids).
    #[arg(long, requires = "classes")]
    class_input: Option<String>,
    /// Where z goes (float32 [count, dim]); Z.json beside it records how the files were made.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &LatentsArgs) -> Result<()> {
    let spec = LatentSpec {
        count: args.count,
        dim: args.dim,
        seed: args.seed,
        truncation: args.truncation,
        input: args.input.clone(),
        classes: args.classes.zip(args.class_input.clone()),
    };
    let recipe = latents::write(&spec, &args.out)?;
    eprintln!(
        "{} latents of {} ({}{}) into {}; recipe in {}",
        recipe.count,
        recipe.dim,
        recipe.distribution,
        recipe
            .classes
            .map_or_else(String::new, |c| format!(", class ids of {c} classes")),
        args.out.display(),
        latents::recipe_path(&args.out).display()
    );
    Ok(())
}
