//! Exemplars of a generator's units (the reference's `generative()`): the generator runs over a
//! latent dataset ([`crate::probing::latents`]), a unit's exemplars are the images generated
//! from the latents where its map peaks, its masks its own maps upsampled and cut at its
//! quantile, and ids.csv indexes the latents. Everything else is [`super::exemplars`]: the same
//! streamed top-k and quantiles, the same folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use milan_networks::Activation;
use milan_networks::generator::{Latent, OnnxGenerator};

use super::exemplars::Probe;
use super::latents::{read_recipe, recipe_path};

/// A generator over its latents.
#[derive(Debug)]
pub struct GeneratorProbe<'a> {
    generator: &'a OnnxGenerator,
    /// One per model input, in the model's order.
    latents: Vec<Latent>,
    samples: usize,
    /// `latents.json` for the folder: where the latents came from.
    record: Vec<u8>,
}

/// Reads one latent file: float32 rows (N, D), or integer ids (N).
pub fn read_latent(path: &Path) -> Result<Latent> {
    if let Ok(a) = ndarray_npy::read_npy::<_, ndarray::Array2<f32>>(path) {
        let width = a.ncols();
        return Ok(Latent::Floats {
            values: a.into_iter().collect(),
            width,
        });
    }
    if let Ok(a) = ndarray_npy::read_npy::<_, ndarray::Array1<i64>>(path) {
        return Ok(Latent::Ids(a.to_vec()));
    }
    if let Ok(a) = ndarray_npy::read_npy::<_, ndarray::Array1<i32>>(path) {
        return Ok(Latent::Ids(a.iter().map(|&v| i64::from(v)).collect()));
    }
    bail!(
        "{}: not a latent array (float32 rows (N, D), or int64/int32 ids (N))",
        path.display()
    )
}

impl<'a> GeneratorProbe<'a> {
    /// The generator's inputs from `latents` (with its recipe `Z.json` when there is one: every
    /// input the recipe lists, hashes checked) and `extra` (NAME=FILE pairs, which win). Without
    /// a recipe, `latents` feeds the first input `extra` does not name.
    pub fn new(
        generator: &'a OnnxGenerator,
        latents: &Path,
        extra: &[(String, PathBuf)],
    ) -> Result<Self> {
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        let recipe_file = recipe_path(latents);
        let mut record = serde_json::json!({ "latents": latents.display().to_string() });
        if recipe_file.is_file() {
            let recipe = read_recipe(latents)?;
            let dir = recipe_file.parent().unwrap_or(Path::new("."));
            for (input, file) in &recipe.inputs {
                files.insert(input.clone(), dir.join(file));
            }
            record["recipe"] = serde_json::to_value(&recipe)?;
        } else if let Some(first) = generator
            .inputs()
            .iter()
            .find(|i| !extra.iter().any(|(n, _)| *n == i.name))
        {
            files.insert(first.name.clone(), latents.to_owned());
        }
        for (name, file) in extra {
            ensure!(
                generator.inputs().iter().any(|i| i.name == *name),
                "--inputs {name}=...: the generator has no input {name:?} (its inputs: {})",
                generator
                    .inputs()
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            files.insert(name.clone(), file.clone());
        }
        let mut arrays = Vec::new();
        for input in generator.inputs() {
            let file = files.get(&input.name).with_context(|| {
                format!(
                    "the generator's input {:?} has no latents: give --inputs {}=FILE.npy",
                    input.name, input.name
                )
            })?;
            arrays.push(read_latent(file)?);
        }
        let samples = arrays.first().map_or(0, Latent::samples);
        for (input, a) in generator.inputs().iter().zip(&arrays) {
            ensure!(
                a.samples() == samples,
                "input {:?} has {} samples, the first input {samples}",
                input.name,
                a.samples()
            );
        }
        let (_, h, w) = generator.image();
        ensure!(
            h == w,
            "the generator's images are {h}x{w}; exemplars need square images"
        );
        record["inputs"] = serde_json::to_value(
            files
                .iter()
                .map(|(k, v)| (k.clone(), v.display().to_string()))
                .collect::<BTreeMap<_, _>>(),
        )?;
        Ok(GeneratorProbe {
            generator,
            latents: arrays,
            samples,
            record: (serde_json::to_string_pretty(&record)? + "\n").into_bytes(),
        })
    }
}

impl Probe for GeneratorProbe<'_> {
    fn samples(&self) -> usize {
        self.samples
    }

    fn check_layers(&self, layers: &[String]) -> Result<()> {
        self.generator.check_layers(layers)
    }

    fn activations(
        &self,
        first: usize,
        n: usize,
        layers: &[String],
        _device: &Device,
    ) -> Result<Vec<Activation>> {
        Ok(self.generator.run(&self.latents, first, n, layers)?.0)
    }

    fn side(&self) -> usize {
        self.generator.image().1
    }

    fn picture(&self, id: usize) -> Result<Vec<u8>> {
        let (_, image) = self.generator.run(&self.latents, id, 1, &[])?;
        Ok(image.iter().map(|v| v.round() as u8).collect())
    }

    fn listing(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(vec![("latents.json".to_owned(), self.record.clone())])
    }

    fn noun(&self) -> &'static str {
        "latents"
    }
}
