//! Exemplar sets for any network: MILAN's first step (done by NetDissect in the reference code).
//!
//! For each unit of each chosen layer: the k images whose activation map has the largest spatial
//! maximum, and a mask per image: the map upsampled bilinearly (align corners) to 224x224,
//! thresholded at the unit's `quantile` (0.99) of all spatial activations over all images.
//!
//! Memory stays bounded whatever the number of images: two streaming passes over the images.
//! Pass 1 keeps, per unit, the running minimum and maximum and the k best images with their
//! low-resolution maps; pass 2 fills a histogram of `bins` equal bins between that minimum and
//! maximum. The quantile is read off the histogram (linear by rank within its bin). Its error
//! bound, stated in rank as quantile sketches do: the value returned lies in the bin that holds
//! rank `q * (n - 1)`, so the number of activations between it and the exact quantile (numpy's
//! linear rule) is at most that bin's count; with 8192 bins (the default) that is a small fraction
//! of the tail the mask keeps. In dense data it is also within one bin width, `(max - min) / bins`,
//! in value. The tests check both on skewed data, and the rank bound on real activations. Images
//! are then read once more, for the exemplars only, through a small cache, to write `images.npy`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use milan_shared::ModelKey;
use milan_shared::milannotations::{DatasetWriter, LayerShape};
use milan_shared::progress::Progress;

use milan_networks::{Activation, Network, SIZE};

#[derive(Debug, Clone)]
pub struct ExemplarConfig {
    pub layers: Vec<String>,
    pub k: usize,
    pub quantile: f64,
    pub batch: usize,
    pub bins: usize,
    /// Memory for exact quantiles (the top 1% of each unit's activations); layers whose tails do
    /// not fit take a second pass and a histogram instead.
    pub exact_budget_bytes: usize,
    /// Write only the first N units of each layer (quick corpora); every unit when `None`.
    pub max_units: Option<usize>,
    /// Refuse a folder whose images differ in size (they would be stretched differently).
    pub uniform_size: bool,
}

impl Default for ExemplarConfig {
    fn default() -> Self {
        ExemplarConfig {
            layers: Vec::new(),
            k: 15,
            quantile: 0.99,
            batch: 16,
            bins: 8192,
            exact_budget_bytes: 512 << 20,
            max_units: None,
            uniform_size: false,
        }
    }
}

/// The MILANNOTATIONS folder of a layer: its name, with the slashes of ONNX node names
/// (`/blocks/blocks.3/Add`) turned into dots (`blocks.blocks.3.Add`).
pub fn layer_folder(name: &str) -> String {
    let flat = name.trim_start_matches('/').replace(['/', '\\'], ".");
    if flat.starts_with('.') || flat.is_empty() {
        format!("_{flat}")
    } else {
        flat
    }
}

/// Every image file under `dir` (PNG, JPEG), sorted by relative path: ids index this list.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort_by(|a, b| a.strip_prefix(dir).ok().cmp(&b.strip_prefix(dir).ok()));
    Ok(files)
}

/// An image as MILANNOTATIONS stores it: RGB, resized bilinearly to 224x224.
pub fn load_image(path: &Path) -> Result<image::RgbImage> {
    load_image_at(path, SIZE)
}

/// An image in RGB, resized bilinearly to size x size.
pub fn load_image_at(path: &Path, size: usize) -> Result<image::RgbImage> {
    let img = image::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .to_rgb8();
    Ok(if img.dimensions() == (size as u32, size as u32) {
        img
    } else {
        image::imageops::resize(
            &img,
            size as u32,
            size as u32,
            image::imageops::FilterType::Triangle,
        )
    })
}

/// Refuses images of different sizes, naming the first that differs from the first image.
pub fn check_uniform_size(files: &[PathBuf]) -> Result<()> {
    let mut first: Option<(&PathBuf, (u32, u32))> = None;
    for f in files {
        let dims = image::image_dimensions(f)
            .with_context(|| format!("reading the size of {}", f.display()))?;
        match first {
            None => first = Some((f, dims)),
            Some((g, d)) if d != dims => bail!(
                "images of mixed sizes: {} is {}x{} but {} is {}x{}; crop or resize them to one \
                 size first (each is stretched to the network's square input)",
                f.display(),
                dims.0,
                dims.1,
                g.display(),
                d.0,
                d.1
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// One candidate exemplar: the spatial max, the image, and its low-resolution map.
#[derive(Debug, Clone)]
struct Candidate {
    max: f32,
    image: usize,
    map: Vec<f32>,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Reversed, so that the heap's top is the worst kept candidate; ties go to the earlier image.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .max
            .total_cmp(&self.max)
            .then(self.image.cmp(&other.image))
    }
}

/// The running state of one unit.
#[derive(Debug, Clone)]
struct UnitStats {
    min: f32,
    max: f32,
    best: BinaryHeap<Candidate>,
    hist: Vec<u64>,
    count: u64,
    /// Exact mode: the largest activations seen (at least the `keep` largest), and a value below
    /// which nothing more needs keeping.
    tail: Vec<f32>,
    floor: f32,
}

/// Per-layer streaming statistics.
#[derive(Debug)]
pub struct LayerStats {
    pub name: String,
    pub height: usize,
    pub width: usize,
    units: Vec<UnitStats>,
    /// Exact mode: how many of each unit's largest activations decide the quantile, and the
    /// number of activations per unit over all images.
    exact: Option<(usize, u64)>,
}

impl LayerStats {
    /// `images` in all; exact quantiles when the tails fit `budget` bytes.
    fn new(
        name: &str,
        [units, height, width]: [usize; 3],
        images: usize,
        q: f64,
        budget: usize,
    ) -> Self {
        let n = (images * height * width) as u64;
        let lo = (q * (n.saturating_sub(1)) as f64).floor() as u64;
        let keep = (n - lo) as usize;
        // Twice `keep` between trims, four bytes each.
        let exact = (units * keep * 2 * 4 <= budget).then_some((keep, n));
        LayerStats {
            name: name.to_owned(),
            height,
            width,
            units: vec![
                UnitStats {
                    min: f32::INFINITY,
                    max: f32::NEG_INFINITY,
                    best: BinaryHeap::new(),
                    hist: Vec::new(),
                    count: 0,
                    tail: Vec::new(),
                    floor: f32::NEG_INFINITY,
                };
                units
            ],
            exact,
        }
    }

    /// Whether the quantiles need the second pass (the histograms).
    pub fn needs_histograms(&self) -> bool {
        self.exact.is_none()
    }

    /// Pass 1 over a batch [n, units, h, w] whose first image is `first`.
    fn observe(&mut self, values: &[f32], n: usize, first: usize, k: usize) {
        let plane = self.height * self.width;
        let units = self.units.len();
        for i in 0..n {
            for (u, stats) in self.units.iter_mut().enumerate() {
                let map = &values[(i * units + u) * plane..(i * units + u + 1) * plane];
                let mut max = f32::NEG_INFINITY;
                for &v in map {
                    max = max.max(v);
                    stats.min = stats.min.min(v);
                }
                if let Some((keep, _)) = self.exact {
                    for &v in map {
                        if stats.tail.len() < keep || v > stats.floor {
                            stats.tail.push(v);
                        }
                    }
                    if stats.tail.len() >= 2 * keep {
                        trim(&mut stats.tail, keep);
                        stats.floor = stats.tail.iter().copied().fold(f32::INFINITY, f32::min);
                    }
                }
                stats.max = stats.max.max(max);
                let candidate = Candidate {
                    max,
                    image: first + i,
                    map: Vec::new(),
                };
                let keep = stats.best.len() < k
                    || stats.best.peek().is_some_and(|worst| candidate < *worst);
                if keep {
                    stats.best.push(Candidate {
                        map: map.to_vec(),
                        ..candidate
                    });
                    if stats.best.len() > k {
                        stats.best.pop();
                    }
                }
            }
        }
    }

    /// Pass 2 over a batch: the histograms.
    fn count(&mut self, values: &[f32], n: usize, bins: usize) {
        let plane = self.height * self.width;
        let units = self.units.len();
        for stats in &mut self.units {
            if stats.hist.is_empty() {
                stats.hist = vec![0; bins];
            }
        }
        for i in 0..n {
            for (u, stats) in self.units.iter_mut().enumerate() {
                let map = &values[(i * units + u) * plane..(i * units + u + 1) * plane];
                let width = stats.max - stats.min;
                for &v in map {
                    let b = if width > 0.0 {
                        (((v - stats.min) / width) * bins as f32) as usize
                    } else {
                        0
                    };
                    stats.hist[b.min(bins - 1)] += 1;
                }
                stats.count += map.len() as u64;
            }
        }
    }

    /// Each unit's quantile, from its histogram.
    pub fn quantiles(&self, q: f64) -> Vec<f32> {
        self.units
            .iter()
            .map(|s| match self.exact {
                Some((keep, n)) => {
                    let mut tail = s.tail.clone();
                    trim(&mut tail, keep);
                    tail.sort_by(f32::total_cmp);
                    // The kept values are ranks n - keep .. n - 1; rank n - keep is `lo`.
                    let rank = q * (n - 1) as f64;
                    let t = (rank - rank.floor()) as f32;
                    let a = tail[0];
                    let b = *tail.get(1).unwrap_or(&a);
                    a * (1.0 - t) + b * t
                }
                None => histogram_quantile(&s.hist, s.count, s.min, s.max, q),
            })
            .collect()
    }
}

/// Keeps the `keep` largest values (in any order).
fn trim(values: &mut Vec<f32>, keep: usize) {
    if values.len() > keep {
        let cut = values.len() - keep;
        values.select_nth_unstable_by(cut, f32::total_cmp);
        values.drain(..cut);
    }
}

/// The q-quantile (numpy's linear rule: rank q * (n - 1)) read off an equal-width histogram over
/// [min, max]: the bin holding that rank, interpolated linearly by rank within the bin. Always
/// within one bin width of the exact value.
pub fn histogram_quantile(hist: &[u64], count: u64, min: f32, max: f32, q: f64) -> f32 {
    if count == 0 {
        return f32::NAN;
    }
    let rank = q * (count - 1) as f64;
    let width = f64::from(max - min) / hist.len() as f64;
    let mut below = 0u64;
    for (b, &c) in hist.iter().enumerate() {
        if c > 0 && (below + c) as f64 > rank {
            let within = (rank - below as f64 + 0.5) / c as f64;
            return (f64::from(min) + width * (b as f64 + within.clamp(0.0, 1.0))) as f32;
        }
        below += c;
    }
    max
}

/// Bilinear upsampling with aligned corners (PyTorch's `align_corners=True`) of an h x w map to
/// size x size.
pub fn upsample_align_corners(map: &[f32], h: usize, w: usize, size: usize) -> Vec<f32> {
    let scale = |n: usize| {
        if size > 1 && n > 1 {
            (n - 1) as f32 / (size - 1) as f32
        } else {
            0.0
        }
    };
    let (sy, sx) = (scale(h), scale(w));
    // Every row reads the same columns with the same weights: computed once, not per pixel. The
    // arithmetic is the per-pixel one's, so the values (and the masks) are the same to the bit.
    let columns: Vec<(usize, usize, f32)> = (0..size)
        .map(|x| {
            let fx = x as f32 * sx;
            let x0 = (fx.floor() as usize).min(w - 1);
            (x0, (x0 + 1).min(w - 1), fx - x0 as f32)
        })
        .collect();
    let mut out = vec![0f32; size * size];
    for (y, row) in out.chunks_exact_mut(size).enumerate() {
        let fy = y as f32 * sy;
        let y0 = (fy.floor() as usize).min(h - 1);
        let y1 = (y0 + 1).min(h - 1);
        let dy = fy - y0 as f32;
        let (upper, lower) = (&map[y0 * w..(y0 + 1) * w], &map[y1 * w..(y1 + 1) * w]);
        for (value, &(x0, x1, dx)) in row.iter_mut().zip(&columns) {
            let top = upper[x0] * (1.0 - dx) + upper[x1] * dx;
            let bottom = lower[x0] * (1.0 - dx) + lower[x1] * dx;
            *value = top * (1.0 - dy) + bottom * dy;
        }
    }
    out
}

/// What exemplars are drawn over: samples (the images of a folder, or a generator's latents),
/// the network's activations for a run of them, and the picture an exemplar of a sample shows.
pub trait Probe: Sync {
    /// How many samples there are; ids are `0..samples()`.
    fn samples(&self) -> usize;
    /// Refuses layers the network cannot give, naming them.
    fn check_layers(&self, layers: &[String]) -> Result<()>;
    /// The activations of `layers` for samples `first..first + n`.
    fn activations(
        &self,
        first: usize,
        n: usize,
        layers: &[String],
        device: &Device,
    ) -> Result<Vec<Activation>>;
    /// Side of the square pictures and masks stored.
    fn side(&self) -> usize;
    /// Sample `id`'s picture as stored: channels first, `side()` square, 0..255.
    fn picture(&self, id: usize) -> Result<Vec<u8>>;
    /// Files that say what the ids index: (name, contents).
    fn listing(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// What a sample is called in progress bars.
    fn noun(&self) -> &'static str;
}

/// The images of a folder through a network: the probe of a discriminative network.
pub struct ImageProbe<'a> {
    net: &'a dyn Network,
    files: Vec<PathBuf>,
    dir: PathBuf,
}

impl std::fmt::Debug for ImageProbe<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageProbe")
            .field("dir", &self.dir)
            .field("images", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl<'a> ImageProbe<'a> {
    /// The images under `dir` (at least `k`; of one size when the config asks).
    pub fn new(net: &'a dyn Network, dir: &Path, config: &ExemplarConfig) -> Result<Self> {
        Ok(ImageProbe {
            net,
            files: probe_images(dir, config)?,
            dir: dir.to_owned(),
        })
    }
}

impl Probe for ImageProbe<'_> {
    fn samples(&self) -> usize {
        self.files.len()
    }

    fn check_layers(&self, layers: &[String]) -> Result<()> {
        self.net.check_layers(layers)
    }

    fn activations(
        &self,
        first: usize,
        n: usize,
        layers: &[String],
        device: &Device,
    ) -> Result<Vec<Activation>> {
        let size = self.net.input_size();
        let mut input = Vec::with_capacity(n * 3 * size * size);
        for path in &self.files[first..first + n] {
            input.extend(self.net.preprocess(&load_image_at(path, size)?));
        }
        self.net.run(input, n, layers, device)
    }

    fn side(&self) -> usize {
        SIZE
    }

    fn picture(&self, id: usize) -> Result<Vec<u8>> {
        Ok(channels_first(&load_image(&self.files[id])?))
    }

    fn listing(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(vec![(
            "images.txt".to_owned(),
            image_list(&self.files, &self.dir).into_bytes(),
        )])
    }

    fn noun(&self) -> &'static str {
        "images"
    }
}

/// An image's pixels as stored in images.npy: channels first.
pub fn channels_first(img: &image::RgbImage) -> Vec<u8> {
    let plane = (img.width() * img.height()) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        for ch in 0..3 {
            chw[ch * plane + i] = p[ch];
        }
    }
    chw
}

/// Runs the network over every sample, calling `each` with the activations of each batch, in
/// batch order. Two batches are in flight on machines with two cores or more: flex runs much of a
/// forward pass (element-wise operations, layouts, bias additions) on the calling thread, so one
/// batch at a time left the second core idle for most of the pass (measured on the demo's
/// exemplars: 1.1 cores busy; docs/performance.md, "First run"). Each batch is computed as it
/// would be alone and `each` sees them in the same order, so the results do not change.
fn stream(
    probe: &dyn Probe,
    layers: &[String],
    batch: usize,
    device: &Device,
    what: &str,
    mut each: impl FnMut(usize, usize, Vec<Activation>),
) -> Result<()> {
    let total = probe.samples();
    let bar = Progress::new(total, what, probe.noun());
    let batch = batch.max(1);
    let firsts: Vec<usize> = (0..total).step_by(batch).collect();
    let runners = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    std::thread::scope(|scope| -> Result<()> {
        // Runner r computes batches r, r + runners, ... and hands each through its own channel,
        // which holds one: the batches are read in turn, so they arrive in order. An error
        // stops its runner; returning drops the receivers, which stops the others.
        let receivers: Vec<_> = (0..runners)
            .map(|r| {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let firsts = &firsts;
                scope.spawn(move || {
                    for &first in firsts.iter().skip(r).step_by(runners) {
                        let n = batch.min(total - first);
                        let acts = probe.activations(first, n, layers, device);
                        let failed = acts.is_err();
                        if tx.send((first, n, acts)).is_err() || failed {
                            break;
                        }
                    }
                });
                rx
            })
            .collect();
        for i in 0..firsts.len() {
            let (first, n, acts) = receivers[i % runners]
                .recv()
                .context("a batch's runner stopped before its batch")?;
            each(first, n, acts?);
            bar.inc(n as u64);
        }
        Ok(())
    })?;
    bar.finish();
    Ok(())
}

/// Exemplar pictures (channels first), so that a picture many units share is read (or generated)
/// once; at most `capacity` are held (oldest out first), which bounds memory at capacity x 150 KB
/// for 224-pixel pictures.
struct ImageCache {
    capacity: usize,
    order: std::collections::VecDeque<usize>,
    images: std::collections::HashMap<usize, Vec<u8>>,
}

impl ImageCache {
    fn new(capacity: usize) -> Self {
        ImageCache {
            capacity,
            order: std::collections::VecDeque::new(),
            images: std::collections::HashMap::new(),
        }
    }

    fn get(&mut self, id: usize, probe: &dyn Probe) -> Result<&[u8]> {
        if !self.images.contains_key(&id) {
            let chw = probe.picture(id)?;
            if self.order.len() >= self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.images.remove(&old);
            }
            self.order.push_back(id);
            self.images.insert(id, chw);
        }
        Ok(&self.images[&id])
    }
}

/// What `compute` wrote.
#[derive(Debug)]
pub struct Report {
    pub folder: PathBuf,
    pub images: usize,
    /// Passes over the images: 1, or 2 when a layer needed quantile histograms.
    pub passes: usize,
    pub layers: Vec<(String, usize)>,
}

/// What [`compute_with`] asks of each unit while it writes it: descriptions from the unit's
/// exemplars, and extra files for the folder.
pub trait UnitHook {
    /// Descriptions of a unit, from its masks (`k` masks of SIZE x SIZE, 0 or 1, row-major) and
    /// the ids of its exemplar images.
    fn describe(
        &mut self,
        layer: &str,
        unit: usize,
        masks: &[u8],
        ids: &[u64],
    ) -> Result<Vec<String>>;
    /// Files to write beside annotations.csv once every unit is written: (name, contents).
    fn extras(&mut self) -> Result<Vec<(String, Vec<u8>)>>;
}

/// Computes exemplars of `net` over the images under `images_dir` and writes the MILANNOTATIONS
/// folder `<out>/<key>` (masks, images, ids per layer; `quantiles.csv` with each unit's
/// threshold; an annotations.csv without descriptions).
pub fn compute(
    net: &dyn Network,
    key: &ModelKey,
    images_dir: &Path,
    out: &Path,
    config: &ExemplarConfig,
    device: &Device,
) -> Result<Report> {
    compute_with(net, key, images_dir, out, config, device, None)
}

/// The configuration checks of [`compute_with`]; returns each layer's folder name.
fn check_config(probe: &dyn Probe, config: &ExemplarConfig) -> Result<Vec<String>> {
    ensure!(
        !config.layers.is_empty(),
        "give at least one layer (--layers)"
    );
    ensure!(config.k >= 1, "--k must be at least 1");
    ensure!(
        config.quantile > 0.0 && config.quantile < 1.0,
        "--quantile must be between 0 and 1"
    );
    ensure!(config.bins >= 2, "at least 2 histogram bins");
    probe.check_layers(&config.layers)?;
    let folders: Vec<String> = config.layers.iter().map(|l| layer_folder(l)).collect();
    for (i, f) in folders.iter().enumerate() {
        if let Some(j) = folders[..i].iter().position(|g| g == f) {
            bail!(
                "layers {:?} and {:?} would share the folder {f:?}: give each once",
                config.layers[j],
                config.layers[i]
            );
        }
    }
    Ok(folders)
}

/// The probe images under `images_dir`, at least `k` of them (of one size when asked).
fn probe_images(images_dir: &Path, config: &ExemplarConfig) -> Result<Vec<PathBuf>> {
    let files = list_images(images_dir)?;
    if config.uniform_size {
        check_uniform_size(&files)?;
    }
    ensure!(
        files.len() >= config.k,
        "{}: {} images, fewer than k = {}",
        images_dir.display(),
        files.len(),
        config.k
    );
    Ok(files)
}

/// The passes over the images: pass 1 keeps the extremes, the k best images per unit and the
/// exact tails when they fit; pass 2, only for layers too large for exact tails, the quantile
/// histograms. Returns every layer's statistics and the number of passes.
fn layer_stats(
    probe: &dyn Probe,
    folders: &[String],
    config: &ExemplarConfig,
    device: &Device,
) -> Result<(Vec<LayerStats>, usize)> {
    let mut stats: Vec<LayerStats> = Vec::new();
    let budget = config.exact_budget_bytes / config.layers.len();
    let samples = probe.samples();
    stream(
        probe,
        &config.layers,
        config.batch,
        device,
        "exemplars",
        |first, n, acts| {
            for (l, act) in acts.into_iter().enumerate() {
                if stats.len() <= l {
                    stats.push(LayerStats::new(
                        &folders[l],
                        [act.units, act.height, act.width],
                        samples,
                        config.quantile,
                        budget,
                    ));
                }
                stats[l].observe(&act.values, n, first, config.k);
            }
        },
    )?;
    let passes = if stats.iter().any(LayerStats::needs_histograms) {
        2
    } else {
        1
    };
    if passes == 2 {
        stream(
            probe,
            &config.layers,
            config.batch,
            device,
            "quantile histograms",
            |_, n, acts| {
                for (l, act) in acts.into_iter().enumerate() {
                    if stats[l].needs_histograms() {
                        stats[l].count(&act.values, n, config.bins);
                    }
                }
            },
        )?;
    }
    Ok((stats, passes))
}

/// One layer's units into the folder: each unit's masks (its map upsampled and thresholded at
/// its quantile), exemplar images and ids, described by the hook when there is one; each unit's
/// threshold appended to `quantile_rows`. Returns the units written.
#[allow(clippy::too_many_arguments)]
fn write_layer(
    writer: &mut DatasetWriter,
    layer: &LayerStats,
    probe: &dyn Probe,
    config: &ExemplarConfig,
    cache: &mut ImageCache,
    hook: &mut Option<&mut dyn UnitHook>,
    quantile_rows: &mut String,
) -> Result<usize> {
    let quantiles = layer.quantiles(config.quantile);
    let units = config
        .max_units
        .map_or(layer.units.len(), |m| m.min(layer.units.len()));
    let side = probe.side();
    let shape = LayerShape {
        units,
        k: config.k,
        height: side,
        width: side,
    };
    let mut lw = writer.layer(&layer.name, shape, true)?;
    let bar = Progress::new(units, &format!("writing {}", layer.name), "units");
    for (u, unit) in layer.units.iter().take(units).enumerate() {
        let mut best = unit.best.clone().into_sorted_vec();
        // into_sorted_vec is ascending by the reversed order: best first.
        best.truncate(config.k);
        let mut masks = Vec::with_capacity(config.k * side * side);
        let mut pixels = Vec::with_capacity(config.k * 3 * side * side);
        let mut ids = Vec::with_capacity(config.k);
        for c in &best {
            if layer.height * layer.width == 1 {
                // A feature vector has no map: the whole image is its region.
                masks.extend(std::iter::repeat_n(1u8, side * side));
            } else {
                let up = upsample_align_corners(&c.map, layer.height, layer.width, side);
                masks.extend(up.iter().map(|&v| u8::from(v > quantiles[u])));
            }
            pixels.extend_from_slice(cache.get(c.image, probe)?);
            ids.push(c.image as u64);
        }
        if let Some(hook) = hook.as_deref_mut() {
            for d in hook.describe(&layer.name, u, &masks, &ids)? {
                writer.describe(&layer.name, u as u32, &d);
            }
        }
        lw.write_unit(u, &masks, Some(&pixels), &ids)?;
        quantile_rows.push_str(&format!("{},{u},{}\n", layer.name, quantiles[u]));
        bar.inc(1);
    }
    bar.finish();
    lw.finish()?;
    Ok(units)
}

/// `images.txt`: the probe images, relative to `images_dir`, one per line in id order.
pub(crate) fn image_list(files: &[PathBuf], images_dir: &Path) -> String {
    let mut list = String::new();
    for f in files {
        list.push_str(
            &f.strip_prefix(images_dir)
                .unwrap_or(f)
                .display()
                .to_string(),
        );
        list.push('\n');
    }
    list
}

/// [`compute`], with a hook that describes each unit as it is written.
pub fn compute_with(
    net: &dyn Network,
    key: &ModelKey,
    images_dir: &Path,
    out: &Path,
    config: &ExemplarConfig,
    device: &Device,
    hook: Option<&mut dyn UnitHook>,
) -> Result<Report> {
    ensure!(
        !config.layers.is_empty(),
        "give at least one layer (--layers)"
    );
    // Layers before images: a mistyped layer is named before the folder is read.
    net.check_layers(&config.layers)?;
    let probe = ImageProbe::new(net, images_dir, config)?;
    compute_probe(&probe, key, out, config, device, hook)
}

/// Exemplars over any [`Probe`] (a folder of images, a generator's latents), written as
/// [`compute`] writes them, with the probe's own listing of what the ids index.
pub fn compute_probe(
    probe: &dyn Probe,
    key: &ModelKey,
    out: &Path,
    config: &ExemplarConfig,
    device: &Device,
    mut hook: Option<&mut dyn UnitHook>,
) -> Result<Report> {
    let folders = check_config(probe, config)?;
    ensure!(
        probe.samples() >= config.k,
        "{} {}, fewer than k = {}",
        probe.samples(),
        probe.noun(),
        config.k
    );
    let (stats, passes) = layer_stats(probe, &folders, config, device)?;

    let mut writer = DatasetWriter::create(out, key)?;
    let mut quantile_rows = String::from("layer,unit,quantile\n");
    let mut report = Report {
        folder: out.join(key.arch()).join(key.dataset()),
        images: probe.samples(),
        passes,
        layers: Vec::new(),
    };
    let mut cache = ImageCache::new(256);
    for layer in &stats {
        let units = write_layer(
            &mut writer,
            layer,
            probe,
            config,
            &mut cache,
            &mut hook,
            &mut quantile_rows,
        )?;
        report.layers.push((layer.name.clone(), units));
    }
    writer.write_extra("quantiles.csv", quantile_rows.as_bytes())?;
    if let Some(hook) = hook {
        for (name, contents) in hook.extras()? {
            writer.write_extra(&name, &contents)?;
        }
    }
    for (name, contents) in probe.listing()? {
        writer.write_extra(&name, &contents)?;
    }
    writer.finish()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy's default (linear) quantile.
    fn exact(values: &mut [f32], q: f64) -> f32 {
        values.sort_by(f32::total_cmp);
        let rank = q * (values.len() - 1) as f64;
        let lo = rank.floor() as usize;
        let hi = (lo + 1).min(values.len() - 1);
        let t = (rank - lo as f64) as f32;
        values[lo] * (1.0 - t) + values[hi] * t
    }

    #[test]
    fn the_histogram_quantile_is_within_one_bin_of_the_exact_one_in_dense_data() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for (case, bins) in [(0, 64), (1, 1024), (2, 8192)] {
            // Skewed like post-activation maps: many small values, a long tail.
            let mut values: Vec<f32> = (0..50_000)
                .map(|_| {
                    let u = next();
                    (if case == 1 { u } else { u.powi(6) * 10.0 - 1.0 }) as f32
                })
                .collect();
            let (min, max) = values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let mut hist = vec![0u64; bins];
            for &v in &values {
                let b = (((v - min) / (max - min)) * bins as f32) as usize;
                hist[b.min(bins - 1)] += 1;
            }
            for q in [0.5, 0.9, 0.99, 0.999] {
                let approx = histogram_quantile(&hist, values.len() as u64, min, max, q);
                let truth = exact(&mut values, q);
                let bound = (max - min) / bins as f32;
                assert!(
                    (approx - truth).abs() <= bound,
                    "bins {bins}, q {q}: {approx} vs {truth}, bound {bound}"
                );
            }
        }
    }

    #[test]
    fn exact_tails_give_numpys_quantile() {
        // 3 images of one unit with a 10x10 map: 300 values, some repeated.
        let values: Vec<f32> = (0..300).map(|i| ((i * 37) % 101) as f32 / 7.0).collect();
        for q in [0.5, 0.9, 0.99] {
            let mut layer = LayerStats::new("l", [1, 10, 10], 3, q, 1 << 20);
            assert!(!layer.needs_histograms());
            for (i, chunk) in values.chunks(100).enumerate() {
                layer.observe(chunk, 1, i, 2);
            }
            let mut all = values.clone();
            assert_eq!(layer.quantiles(q)[0], exact(&mut all, q), "q {q}");
        }
        // Without memory for the tails, the histogram pass is asked for.
        assert!(LayerStats::new("l", [1, 10, 10], 3, 0.99, 0).needs_histograms());
    }

    #[test]
    fn upsampling_keeps_the_corners_and_interpolates_between() {
        let map = [0.0, 1.0, 2.0, 3.0];
        let up = upsample_align_corners(&map, 2, 2, 3);
        assert_eq!(up, vec![0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]);
        let flat = upsample_align_corners(&[4.0], 1, 1, 5);
        assert!(flat.iter().all(|&v| v == 4.0));
    }

    /// The column tables give the per-pixel computation's values to the bit (masks are data:
    /// a stored exemplar set must not change with the implementation).
    #[test]
    fn upsampling_by_column_tables_matches_the_per_pixel_formula_to_the_bit() {
        fn per_pixel(map: &[f32], h: usize, w: usize, size: usize) -> Vec<f32> {
            let scale = |n: usize| {
                if size > 1 && n > 1 {
                    (n - 1) as f32 / (size - 1) as f32
                } else {
                    0.0
                }
            };
            let (sy, sx) = (scale(h), scale(w));
            let mut out = vec![0f32; size * size];
            for y in 0..size {
                let fy = y as f32 * sy;
                let y0 = (fy.floor() as usize).min(h - 1);
                let y1 = (y0 + 1).min(h - 1);
                let dy = fy - y0 as f32;
                for x in 0..size {
                    let fx = x as f32 * sx;
                    let x0 = (fx.floor() as usize).min(w - 1);
                    let x1 = (x0 + 1).min(w - 1);
                    let dx = fx - x0 as f32;
                    let top = map[y0 * w + x0] * (1.0 - dx) + map[y0 * w + x1] * dx;
                    let bottom = map[y1 * w + x0] * (1.0 - dx) + map[y1 * w + x1] * dx;
                    out[y * size + x] = top * (1.0 - dy) + bottom * dy;
                }
            }
            out
        }
        let mut seed = 0x2545_f491_u32;
        for (h, w, size) in [
            (14, 14, 224),
            (7, 7, 224),
            (28, 14, 224),
            (1, 5, 32),
            (3, 1, 7),
        ] {
            let map: Vec<f32> = (0..h * w)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as f32 / u32::MAX as f32 * 12.0 - 3.0
                })
                .collect();
            let ours = upsample_align_corners(&map, h, w, size);
            let theirs = per_pixel(&map, h, w, size);
            let same = ours
                .iter()
                .zip(&theirs)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{h}x{w} to {size}");
        }
    }

    #[test]
    fn the_k_best_are_kept_with_their_maps() {
        let mut layer = LayerStats::new("l", [2, 1, 2], 4, 0.99, 1 << 20);
        // 4 images x 2 units x (1x2) maps.
        let values = [
            1.0, 2.0, /* u1 */ 0.0, 0.0, //
            5.0, 0.0, /* u1 */ 0.0, 9.0, //
            3.0, 3.0, /* u1 */ 1.0, 1.0, //
            0.0, 4.0, /* u1 */ 7.0, 7.0,
        ];
        layer.observe(&values, 4, 10, 2);
        let best: Vec<_> = layer.units[0].best.clone().into_sorted_vec();
        assert_eq!(best.iter().map(|c| c.image).collect::<Vec<_>>(), [11, 13]);
        assert_eq!(best[0].map, [5.0, 0.0]);
        let best1: Vec<_> = layer.units[1].best.clone().into_sorted_vec();
        assert_eq!(best1.iter().map(|c| c.image).collect::<Vec<_>>(), [11, 13]);
        assert_eq!((layer.units[1].min, layer.units[1].max), (0.0, 9.0));
    }
}
