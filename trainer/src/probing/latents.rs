//! Latent datasets: the inputs a generator's exemplars are drawn from (the reference's
//! `scripts/generate_biggan_zs.py`: normal z and uniform class ids), made reproducibly from a
//! seed and recorded beside the arrays so that exemplars can be computed again exactly.
//!
//! `Z.npy` holds z, float32 [count, dim]: standard normal draws, or with a truncation `t`
//! BigGAN's truncation trick, `t` times a normal cut to [-2, 2] (`truncated_noise_sample`).
//! With classes, `Z.<input>.npy` holds one class id per sample, int64 [count], uniform over
//! `0..classes`. `Z.json` records how both were made and their SHA-256. Draws come from
//! `milan_shared::random` over ChaCha8: z from the stream of `seed`, classes from the stream of
//! `seed + 1`, row by row, so a seed gives the same file on every machine and release.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use milan_shared::atomic;
use milan_shared::random::{index, normal, truncated_normal};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::util::checksum::sha256_file;

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentSpec {
    pub count: usize,
    pub dim: usize,
    pub seed: u64,
    /// BigGAN's truncation: z is `truncation` times a normal cut to [-2, 2].
    pub truncation: Option<f64>,
    /// The generator's input that takes z.
    pub input: String,
    /// Class ids for a class-conditional generator: (classes, the input that takes them).
    pub classes: Option<(usize, String)>,
}

/// How a latent dataset was made: `Z.json` beside `Z.npy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub version: u32,
    pub count: usize,
    pub dim: usize,
    pub seed: u64,
    /// `normal` or `truncated-normal`.
    pub distribution: String,
    pub truncation: Option<f64>,
    pub classes: Option<usize>,
    /// Each generator input and its file, relative to the recipe's folder.
    pub inputs: BTreeMap<String, String>,
    /// SHA-256 of each file.
    pub sha256: BTreeMap<String, String>,
}

/// The recipe's path for a latent file: `Z.npy` -> `Z.json`.
pub fn recipe_path(latents: &Path) -> PathBuf {
    latents.with_extension("json")
}

/// Draws the dataset and writes `out` (z), the class file and the recipe, each atomically.
pub fn write(spec: &LatentSpec, out: &Path) -> Result<Recipe> {
    ensure!(spec.count >= 1, "--count must be at least 1");
    ensure!(spec.dim >= 1, "--dim must be at least 1");
    if let Some(t) = spec.truncation {
        ensure!(
            t > 0.0 && t.is_finite(),
            "--truncation must be a positive number (BigGAN uses 0.4 to 1)"
        );
    }
    ensure!(
        out.extension().is_some_and(|e| e == "npy"),
        "{}: the latent file must end in .npy",
        out.display()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let z: Vec<f32> = (0..spec.count * spec.dim)
        .map(|_| match spec.truncation {
            Some(t) => (t * truncated_normal(&mut rng, 2.0)) as f32,
            None => normal(&mut rng) as f32,
        })
        .collect();
    let z = ndarray::Array2::from_shape_vec((spec.count, spec.dim), z).expect("count x dim");
    let name = |p: &Path| {
        p.file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned()
    };
    let mut inputs = BTreeMap::new();
    let mut files = vec![out.to_owned()];
    write_npy(out, &z)?;
    inputs.insert(spec.input.clone(), name(out));
    if let Some((classes, input)) = &spec.classes {
        ensure!(*classes >= 1, "--classes must be at least 1");
        ensure!(
            *input != spec.input,
            "--class-input {input:?} is also the z input's name"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed.wrapping_add(1));
        let ids: Vec<i64> = (0..spec.count)
            .map(|_| index(&mut rng, *classes) as i64)
            .collect();
        let path = out.with_extension(format!("{input}.npy"));
        write_npy(&path, &ndarray::Array1::from(ids))?;
        inputs.insert(input.clone(), name(&path));
        files.push(path);
    }
    let mut sha256 = BTreeMap::new();
    for f in &files {
        sha256.insert(name(f), sha256_file(f)?);
    }
    let recipe = Recipe {
        version: 1,
        count: spec.count,
        dim: spec.dim,
        seed: spec.seed,
        distribution: if spec.truncation.is_some() {
            "truncated-normal"
        } else {
            "normal"
        }
        .to_owned(),
        truncation: spec.truncation,
        classes: spec.classes.as_ref().map(|(c, _)| *c),
        inputs,
        sha256,
    };
    atomic::write(
        &recipe_path(out),
        (serde_json::to_string_pretty(&recipe)? + "\n").as_bytes(),
    )?;
    Ok(recipe)
}

fn write_npy<A: ndarray_npy::WritableElement, D: ndarray::Dimension>(
    path: &Path,
    array: &ndarray::Array<A, D>,
) -> Result<()> {
    let pending = atomic::Pending::new(path)?;
    ndarray_npy::write_npy(pending.path(), array)
        .with_context(|| format!("writing {}", path.display()))?;
    pending.commit()
}

/// Reads the recipe beside `latents` and checks its files against their recorded hashes.
pub fn read_recipe(latents: &Path) -> Result<Recipe> {
    let path = recipe_path(latents);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let recipe: Recipe = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a latent recipe", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    for (file, want) in &recipe.sha256 {
        let got = sha256_file(&dir.join(file))?;
        ensure!(
            &got == want,
            "{}: its SHA-256 is not the one {} recorded: the latents changed since",
            dir.join(file).display(),
            path.display()
        );
    }
    Ok(recipe)
}
