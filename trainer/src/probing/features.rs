//! MILAN's masked pyramid features: one vector per exemplar image, from several stages of a frozen
//! image encoder, each stage pooled with the exemplar's mask as weights (milan-reference.md
//! section 3).
//!
//! Per stage: the binary mask is resized bilinearly (half-pixel centres, PyTorch's
//! `align_corners=False`) to the stage's feature map, normalised to sum 1, and used for a weighted
//! spatial sum; the stage vectors are concatenated. An empty mask pools uniformly (a plain mean)
//! rather than giving zeros. The image itself goes in unmasked.
//!
//! ResNets (MILAN's own encoder): conv1 and `layer1` to `layer4`, 3904 dimensions for
//! ResNet-50/101/152 and 1024 for ResNet-18/34, as in the reference.
//!
//! EfficientNet-Lite0's pyramid, one stage per resolution as ResNet's conv1 + 4 stages:
//! `_blocks.0` (16 channels, 112x112), `_blocks.2` (24, 56x56), `_blocks.4` (40, 28x28),
//! `_blocks.10` (112, 14x14) and the head (1280, 7x7): 1472 dimensions.
//!
//! `compute` writes a whole MILANNOTATIONS folder's features into a cache folder named by a hash of
//! the encoder, its weights and the folder's files, as `<layer>.npy` (float32, units x k x dims),
//! and later runs with the same inputs reuse it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use milan_shared::milannotations::{Dataset, OMITTED_FILE, npy_header_for};
use milan_shared::progress::Progress;
use sha2::{Digest, Sha256};

use milan_networks::efficientnet::{EfficientNetLite0, INPUT_SIZE};

/// An encoder that gives masked pyramid features.
pub trait Featurizer {
    /// A name for the cache key and the metadata.
    fn name(&self) -> &str;
    fn dims(&self) -> usize;
    /// `images` [n, 3, s, s] normalised, `masks` [n, 1, s, s] of 0/1 -> [n, dims]; s is 224 for
    /// MILANNOTATIONS (smaller exemplars, like the synthetic corpus' 64 px, go in at their size).
    fn features(&self, images: Tensor<4>, masks: Tensor<4>) -> Tensor<2>;
    /// One RGB image (u8, channels first) as the network's input.
    fn normalise(&self, chw: &[u8]) -> Vec<f32>;
}

/// The weighted spatial sum of `feature` [n, c, h, w] with the mask resized to h x w and
/// normalised to sum 1 per image: [n, c].
pub fn masked_pool(feature: Tensor<4>, masks: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = feature.dims();
    let weights = interpolate(
        masks,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([h, w]),
    );
    // A tiny uniform floor: an empty mask becomes a plain mean; any real mask outweighs it by
    // twelve orders of magnitude.
    let floor = 1e-12;
    let weights = weights + floor;
    let total = weights.clone().sum_dim(2).sum_dim(3);
    let weights = weights / total;
    (feature * weights).sum_dim(3).sum_dim(2).reshape([n, c])
}

/// EfficientNet-Lite0's stages for the pyramid (see the module docs).
pub const EFFICIENTNET_STAGES: [usize; 4] = [0, 2, 4, 10];

impl Featurizer for EfficientNetLite0 {
    fn name(&self) -> &str {
        "efficientnet-lite0"
    }

    fn dims(&self) -> usize {
        16 + 24 + 40 + 112 + 1280
    }

    fn features(&self, images: Tensor<4>, masks: Tensor<4>) -> Tensor<2> {
        let mut out = self.forward(images, &EFFICIENTNET_STAGES);
        let mut parts: Vec<Tensor<2>> = EFFICIENTNET_STAGES
            .iter()
            .map(|b| masked_pool(out.blocks.remove(b).expect("kept"), masks.clone()))
            .collect();
        parts.push(masked_pool(out.head, masks));
        Tensor::cat(parts, 1)
    }

    fn normalise(&self, chw: &[u8]) -> Vec<f32> {
        chw.iter()
            .map(|&v| (f32::from(v) / 255.0 - 0.5) / 0.5)
            .collect()
    }
}

impl Featurizer for milan_networks::resnet::ResNet {
    fn name(&self) -> &str {
        self.depth.name()
    }

    /// conv1 and the four stages: 3904 for ResNet-50/101/152, 1024 for ResNet-18/34.
    fn dims(&self) -> usize {
        self.depth.widths().iter().sum()
    }

    fn features(&self, images: Tensor<4>, masks: Tensor<4>) -> Tensor<2> {
        use milan_networks::resnet::LAYERS;
        let mut out = self.forward(images, &LAYERS);
        let parts: Vec<Tensor<2>> = LAYERS
            .iter()
            .map(|l| masked_pool(out.layers.remove(l).expect("kept"), masks.clone()))
            .collect();
        Tensor::cat(parts, 1)
    }

    fn normalise(&self, chw: &[u8]) -> Vec<f32> {
        use milan_networks::resnet::{MEAN, STD};
        let plane = chw.len() / 3;
        chw.iter()
            .enumerate()
            .map(|(i, &v)| (f32::from(v) / 255.0 - MEAN[i / plane]) / STD[i / plane])
            .collect()
    }
}

/// The encoder called `name` (efficientnet-lite0, or resnet18/34/50/101/152) with its weights:
/// `weights`, or the encoder's fetched asset. Returns the encoder and the weights' path (part of
/// the cache key).
pub fn load_featurizer(
    name: &str,
    weights: Option<&Path>,
    device: &Device,
) -> Result<(Box<dyn Featurizer>, PathBuf)> {
    let weights = match weights {
        Some(w) => w.to_owned(),
        None if name.starts_with("resnet") => crate::assets::registered_weights(name)
            .with_context(|| {
                format!(
                    "{name} needs torchvision's weights: pass --weights FILE (torchvision's .pth, \
                     or safetensors), or register them once with `trainer assets fetch {name} \
                     --from FILE`"
                )
            })?,
        None => {
            let file = crate::assets::path(name)?.join("efficientnet-lite0-57934424.pth");
            ensure!(
                file.is_file(),
                "no weights at {}: run `trainer assets fetch {name}`, or pass --weights",
                file.display()
            );
            file
        }
    };
    let encoder: Box<dyn Featurizer> = match name {
        "efficientnet-lite0" => Box::new(EfficientNetLite0::load(&weights, device)?),
        name if name.starts_with("resnet") => Box::new(milan_networks::resnet::ResNet::load(
            &weights,
            milan_networks::resnet::Depth::parse(name)?,
            device,
        )?),
        other => anyhow::bail!(
            "unknown encoder {other:?}: use efficientnet-lite0 or resnet18/34/50/101/152"
        ),
    };
    Ok((encoder, weights))
}

/// The feature cache folder: `$MILAN_CACHE`, else `./cache`.
pub fn default_cache() -> PathBuf {
    std::env::var_os("MILAN_CACHE").map_or_else(|| PathBuf::from("cache"), PathBuf::from)
}

/// A cached feature set.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    pub dir: PathBuf,
    pub layers: Vec<String>,
    pub dims: usize,
    /// Whether this run found it in the cache.
    pub reused: bool,
}

/// The cache key: the encoder's name and dims, the weights' hash, and every dataset file's hash
/// (omitted.csv included).
fn cache_key(featurizer: &dyn Featurizer, weights: &Path, dataset: &Dataset) -> Result<String> {
    let mut files = vec![weights.to_owned()];
    for layer in dataset.layers() {
        let dir = dataset.dir().join(layer.name());
        for name in ["masks.npy", "images.npy", "ids.csv"] {
            files.push(dir.join(name));
        }
        // Which units have exemplars is an input too (their features are computed or zero).
        if dir.join(OMITTED_FILE).is_file() {
            files.push(dir.join(OMITTED_FILE));
        }
    }
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} hashing inputs {bar:40} {bytes}/{total_bytes}")
            .expect("valid template"),
    );
    let mut key = Sha256::new();
    key.update(format!("{}:{}\n", featurizer.name(), featurizer.dims()));
    for f in &files {
        let name = f
            .strip_prefix(dataset.dir())
            .unwrap_or(Path::new("weights"));
        key.update(format!(
            "{}={}\n",
            name.display(),
            crate::assets::sha256_file_with(f, &bar)?
        ));
    }
    bar.finish_and_clear();
    Ok(hex::encode(key.finalize())[..16].to_owned())
}

/// Features of every exemplar of a MILANNOTATIONS folder (which must hold images.npy), in
/// `<cache>/<encoder>-<key>/`, computed once.
pub fn compute(
    featurizer: &dyn Featurizer,
    weights: &Path,
    data: &Path,
    cache: &Path,
    batch: usize,
    device: &Device,
) -> Result<FeatureSet> {
    let dataset = Dataset::open(data)?;
    ensure!(
        !dataset.layers().is_empty(),
        "{}: no layers",
        data.display()
    );
    for layer in dataset.layers() {
        ensure!(
            layer.images().is_some(),
            "{}/{}: no images.npy; features need the exemplar images (a released ImageNet key \
             points into ImageNet instead: resolve its ids with `trainer data fetch {} --root \
             <ROOT> --imagenet <IMAGENET DIR>`)",
            data.display(),
            layer.name(),
            dataset.key()
        );
        let shape = layer.shape();
        ensure!(
            shape.height == shape.width && shape.height >= 32 && shape.height % 32 == 0,
            "{}/{}: exemplars are {}x{}; the encoders take square images whose side is a \
             multiple of 32 ({INPUT_SIZE}x{INPUT_SIZE} as MILANNOTATIONS, or smaller)",
            data.display(),
            layer.name(),
            shape.height,
            shape.width
        );
    }
    let key = cache_key(featurizer, weights, &dataset)?;
    let dir = cache.join(format!("{}-{key}", featurizer.name()));
    let layers: Vec<String> = dataset
        .layers()
        .iter()
        .map(|l| l.name().to_owned())
        .collect();
    let dims = featurizer.dims();
    if dir.join(".complete").is_file() {
        return Ok(FeatureSet {
            dir,
            layers,
            dims,
            reused: true,
        });
    }
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let tmp = cache.join(format!(
        ".{}-{key}.tmp-{}",
        featurizer.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let result = write_features(featurizer, &dataset, &tmp, batch, device);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::write(
        tmp.join("meta.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "encoder": featurizer.name(),
            "dims": dims,
            "dataset": dataset.dir().display().to_string(),
            "key": dataset.key().to_string(),
            "layers": layers,
        }))?,
    )?;
    std::fs::write(tmp.join(".complete"), &key)?;
    milan_shared::atomic::publish_dir(&tmp, &dir)?;
    Ok(FeatureSet {
        dir,
        layers,
        dims,
        reused: false,
    })
}

fn write_features(
    featurizer: &dyn Featurizer,
    dataset: &Dataset,
    out: &Path,
    batch: usize,
    device: &Device,
) -> Result<()> {
    use std::io::Write;
    let dims = featurizer.dims();
    // Units an export left out (omitted.csv) have zero rows: their features are zero, and the
    // network never sees them.
    let total: usize = dataset
        .layers()
        .iter()
        .map(|l| (0..l.units()).filter(|&u| l.has_exemplars(u)).count() * l.shape().k)
        .sum();
    let progress = Progress::new(total, "features", "exemplars");
    for layer in dataset.layers() {
        let shape = layer.shape();
        let (height, width) = (shape.height, shape.width);
        let plane = height * width;
        let path = out.join(format!("{}.npy", layer.name()));
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        file.write_all(&npy_header_for("<f4", &[shape.units, shape.k, dims]))?;
        let images = layer.images().expect("checked");
        let zeros = vec![0u8; shape.k * dims * 4];
        // Exemplars of consecutive units in batches of about `batch` images.
        let per_batch = (batch / shape.k).max(1);
        for first in (0..shape.units).step_by(per_batch) {
            let units: Vec<usize> = (first..(first + per_batch).min(shape.units)).collect();
            let present: Vec<usize> = units
                .iter()
                .copied()
                .filter(|&u| layer.has_exemplars(u))
                .collect();
            let n = present.len() * shape.k;
            let f = if present.is_empty() {
                Vec::new()
            } else {
                let mut pixels = Vec::with_capacity(n * 3 * plane);
                let mut masks = Vec::with_capacity(n * plane);
                for &u in &present {
                    pixels.extend(featurizer.normalise(images.unit_bytes(u)));
                    masks.extend(layer.masks().unit_bytes(u).iter().map(|&m| f32::from(m)));
                    images.release(u);
                    layer.masks().release(u);
                }
                let x =
                    Tensor::<4>::from_data(TensorData::new(pixels, [n, 3, height, width]), device);
                let m =
                    Tensor::<4>::from_data(TensorData::new(masks, [n, 1, height, width]), device);
                featurizer
                    .features(x, m)
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| anyhow::anyhow!("reading features: {e:?}"))?
            };
            let mut rows = f.chunks_exact(shape.k * dims);
            for &u in &units {
                if layer.has_exemplars(u) {
                    let row = rows.next().expect("one row of features per present unit");
                    for v in row {
                        file.write_all(&v.to_le_bytes())?;
                    }
                } else {
                    file.write_all(&zeros)?;
                }
            }
            progress.inc(n as u64);
        }
        file.into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?
            .sync_all()?;
    }
    progress.finish();
    Ok(())
}

/// One layer's features from the cache, memory-mapped (read with ndarray-npy).
#[derive(Debug)]
pub struct LayerFeatures {
    map: memmap2::Mmap,
}

impl LayerFeatures {
    pub fn open(set: &FeatureSet, layer: &str) -> Result<LayerFeatures> {
        let path = set.dir.join(format!("{layer}.npy"));
        let file =
            std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
        // SAFETY: cache files are written once, in a temporary folder renamed into place, and
        // never modified afterwards.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let features = LayerFeatures { map };
        features
            .view()
            .with_context(|| format!("{}: not a float32 (units, k, dims) array", path.display()))?;
        Ok(features)
    }

    /// (units, k, dims)
    pub fn view(&self) -> Result<ndarray::ArrayView3<'_, f32>> {
        use ndarray_npy::ViewNpyExt;
        Ok(ndarray::ArrayView3::<f32>::view_npy(&self.map)?)
    }
}
