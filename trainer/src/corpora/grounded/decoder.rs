//! The `decoder` key: the grounded corpus's generator probed as the reference probes BigGAN
//! (`generative()` in its `src/exemplars/compute.py`). The generator runs over a latent dataset;
//! a unit's exemplars are the images generated from the 15 latents where its map peaks, its masks
//! its own maps upsampled and cut at its 0.99 quantile, and ids.csv indexes the latents.
//!
//! The latent dataset is the encoder's code of each scene of the set, in the order of
//! `images.txt`: latent `i` generates scene `i`'s reconstruction, drawn where the scene's objects
//! were, so it keeps that scene's per-pixel truth for NetDissect and the simulated describers.
//! The folder holds the latents (`latents.npy`, float32 [scenes, 128]) and where they came from
//! (`latents.json`), so the exemplars can be generated again from them alone.

use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use burn::tensor::{Device, Tensor, TensorData};
use milan_networks::{Activation, SIZE};
use ndarray_npy::WriteNpyExt;

use super::nets::{self, Decoder, GENERATOR_LAYERS, LATENT};
use crate::probing::exemplars::{self, Probe};

/// Scenes encoded at a time.
const BATCH: usize = 32;

/// The decoder's generator over the latents of a scene set.
pub struct LatentProbe<'a> {
    decoder: &'a Decoder,
    /// [samples, LATENT], row-major.
    latents: Vec<f32>,
    samples: usize,
    files: Vec<PathBuf>,
    images_dir: PathBuf,
    device: Device,
}

impl std::fmt::Debug for LatentProbe<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatentProbe")
            .field("images_dir", &self.images_dir)
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl<'a> LatentProbe<'a> {
    /// Encodes every scene under `images_dir` (in [`exemplars::list_images`]'s order, the order
    /// of the scene set's truths) into its latent.
    pub fn new(decoder: &'a Decoder, images_dir: &Path, device: &Device) -> Result<Self> {
        let files = exemplars::list_images(images_dir)?;
        let plane = 3 * SIZE * SIZE;
        let mut latents = Vec::with_capacity(files.len() * LATENT);
        for chunk in files.chunks(BATCH) {
            let mut input = Vec::with_capacity(chunk.len() * plane);
            for f in chunk {
                input.extend(nets::preprocess(&exemplars::load_image(f)?));
            }
            let x = Tensor::<4>::from_data(
                TensorData::new(input, [chunk.len(), 3, SIZE, SIZE]),
                device,
            );
            let (z, _) = decoder.encoder.forward(x);
            latents.extend(
                z.into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| anyhow::anyhow!("reading latents: {e:?}"))?,
            );
        }
        Ok(LatentProbe {
            decoder,
            samples: files.len(),
            latents,
            files,
            images_dir: images_dir.to_owned(),
            device: device.clone(),
        })
    }

    /// The latents, [samples, LATENT] row-major.
    pub fn latents(&self) -> &[f32] {
        &self.latents
    }

    fn latent_batch(&self, first: usize, n: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(
                self.latents[first * LATENT..(first + n) * LATENT].to_vec(),
                [n, LATENT],
            ),
            device,
        )
    }
}

/// A generated image (preprocessed scale, [1, 3, s, s]) as stored: 0..255, scaled to SIZE
/// pixels bilinearly (the generator draws at 112, the masks and truths are at 224), channels
/// first.
fn stored_picture(image: Tensor<4>) -> Result<Vec<u8>> {
    let [_, _, h, w] = image.dims();
    let values = image
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the generated image: {e:?}"))?;
    let plane = h * w;
    let small = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        image::Rgb(std::array::from_fn(|c| {
            ((values[c * plane + i] + 0.5) * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8
        }))
    });
    let big = image::imageops::resize(
        &small,
        SIZE as u32,
        SIZE as u32,
        image::imageops::FilterType::Triangle,
    );
    Ok(exemplars::channels_first(&big))
}

impl Probe for LatentProbe<'_> {
    fn samples(&self) -> usize {
        self.samples
    }

    fn check_layers(&self, layers: &[String]) -> Result<()> {
        for l in layers {
            ensure!(
                GENERATOR_LAYERS.contains(&l.as_str()),
                "the decoder has no layer {l:?}: its layers are {}",
                GENERATOR_LAYERS.join(", ")
            );
        }
        Ok(())
    }

    fn activations(
        &self,
        first: usize,
        n: usize,
        layers: &[String],
        device: &Device,
    ) -> Result<Vec<Activation>> {
        self.check_layers(layers)?;
        let (all, _) = self
            .decoder
            .generator
            .forward(self.latent_batch(first, n, device));
        layers
            .iter()
            .map(|l| {
                let i = GENERATOR_LAYERS
                    .iter()
                    .position(|g| g == l)
                    .expect("checked above");
                Activation::read(all[i].clone())
            })
            .collect()
    }

    fn side(&self) -> usize {
        SIZE
    }

    fn picture(&self, id: usize) -> Result<Vec<u8>> {
        let (_, image) = self
            .decoder
            .generator
            .forward(self.latent_batch(id, 1, &self.device));
        stored_picture(image)
    }

    fn listing(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let array = ndarray::Array2::from_shape_vec((self.samples, LATENT), self.latents.clone())?;
        let mut npy = Vec::new();
        array.write_npy(&mut npy)?;
        let images = exemplars::image_list(&self.files, &self.images_dir);
        let record = serde_json::json!({
            "latents": "latents.npy",
            "shape": [self.samples, LATENT],
            "made_by": "the decoder's encoder: latent i is the code of scene i of images.txt",
            "scenes": self.images_dir.display().to_string(),
        });
        Ok(vec![
            ("latents.npy".to_owned(), npy),
            (
                "latents.json".to_owned(),
                (serde_json::to_string_pretty(&record)? + "\n").into_bytes(),
            ),
            ("images.txt".to_owned(), images.into_bytes()),
        ])
    }

    fn noun(&self) -> &'static str {
        "latents"
    }
}
