//! `trainer bench`: images per second through EfficientNet-Lite0 (forward only) and through
//! exemplar computation, on each backend this build has, with peak memory. Figures are printed
//! with their ratio to the encoder's batch-16 rate measured in the same run, since the machine's
//! speed varies.

use std::time::Instant;

#[cfg(feature = "onnx")]
use anyhow::Context;
use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use milan_networks::efficientnet::{EfficientNetLite0, INPUT_SIZE};
use milan_trainer::probing::exemplars::{self, ExemplarConfig};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Images per measurement (default 256; 60 with --encoders).
    #[arg(long)]
    images: Option<usize>,
    /// Benchmark the MILAN model (training steps/s, decoded neurons/s) instead of the encoder.
    #[arg(long, conflicts_with = "encoders")]
    model: bool,
    /// Benchmark MILAN's masked pyramid features (`trainer features`) instead: images/s of each
    /// encoder named (default resnet50,resnet101,efficientnet-lite0) on each backend.
    #[arg(long, num_args = 0.., value_delimiter = ',', value_name = "ENCODER")]
    encoders: Option<Vec<String>>,
    /// With --encoders: exemplar images per forward pass (`trainer features`' default).
    #[arg(long, default_value_t = 30)]
    batch: usize,
    /// Timed training steps per model measurement (with --model); the rate is one over the
    /// median step time.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// With --model or --encoders: also time the same work written in PyTorch (the torch that
    /// scripts/install-libtorch installs) and print every figure as a ratio to PyTorch's.
    #[arg(long)]
    vs_pytorch: bool,
    /// With --vs-pytorch: the Python that has torch (default: the virtualenv of
    /// scripts/install-libtorch, $MILAN_TORCH_VENV or ~/.cache/milan-rs/torch-2.9.0).
    #[arg(long, requires = "vs_pytorch")]
    python: Option<std::path::PathBuf>,
    /// Benchmark an ONNX model on tract instead: images/s of the forward pass to --layers at
    /// each batch size and thread count, and of whole exemplar runs.
    #[arg(long, conflicts_with_all = ["model", "encoders"])]
    onnx: Option<std::path::PathBuf>,
    /// With --onnx, a generator: its latent dataset (`trainer latents`); latents/s of the
    /// forward pass at each batch size and of a whole exemplar run over the latents.
    #[arg(long, requires = "onnx")]
    latents: Option<std::path::PathBuf>,
    /// With --latents: more generator inputs, NAME=FILE.npy.
    #[arg(long = "inputs", value_name = "NAME=FILE.npy", requires = "latents")]
    inputs: Vec<String>,
    /// With --onnx: the layers whose outputs are read (default: the last describable node).
    #[arg(long, value_delimiter = ',')]
    layers: Vec<String>,
    /// With --onnx: images per run of the model to measure (batching inside tract).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    batches: Vec<usize>,
    /// With --onnx: thread counts to measure (each batch split over them).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    thread_counts: Vec<usize>,
    #[command(flatten)]
    input: crate::cli::exemplars::OnnxArgs,
}

/// The process's peak resident set (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// `len` deterministic values in [-1, 1): an input whose content does not matter to the speed.
fn synthetic_input(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as u64 * 2_654_435_761) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

fn forward_rate(model: &EfficientNetLite0, images: usize, batch: usize, device: &Device) -> f64 {
    let values = synthetic_input(batch * 3 * INPUT_SIZE * INPUT_SIZE);
    let x = Tensor::<4>::from_data(
        TensorData::new(values, [batch, 3, INPUT_SIZE, INPUT_SIZE]),
        device,
    );
    // One untimed pass first (allocations, thread pools).
    let _ = model.forward(x.clone(), &[]).logits.into_data();
    let rounds = images.div_ceil(batch);
    let started = Instant::now();
    for _ in 0..rounds {
        let _ = model.forward(x.clone(), &[]).logits.into_data();
    }
    (rounds * batch) as f64 / started.elapsed().as_secs_f64()
}

pub fn run(args: &BenchArgs) -> Result<()> {
    anyhow::ensure!(
        !args.vs_pytorch || args.model || args.encoders.is_some(),
        "--vs-pytorch compares --model or --encoders with PyTorch; give one of them"
    );
    let python = match (args.vs_pytorch, &args.python) {
        (false, _) => None,
        (true, Some(p)) => Some(p.clone()),
        (true, None) => Some(crate::cli::bench_model::default_python()?),
    };
    if args.model {
        return crate::cli::bench_model::run(args.steps, python.as_deref());
    }
    if let Some(encoders) = &args.encoders {
        return crate::cli::bench_encoders::run(
            encoders,
            args.images.unwrap_or(60),
            args.batch,
            python.as_deref(),
        );
    }
    let images = args.images.unwrap_or(256);
    if let Some(path) = &args.onnx {
        #[cfg(feature = "onnx")]
        return onnx_bench(path, args);
        #[cfg(not(feature = "onnx"))]
        return Err(milan_trainer::util::onnx_feature::missing(
            &path.display().to_string(),
        ));
    }
    let weights =
        milan_trainer::assets::path("efficientnet-lite0")?.join("efficientnet-lite0-57934424.pth");
    anyhow::ensure!(
        weights.is_file(),
        "no weights at {}: run `trainer assets fetch efficientnet-lite0`",
        weights.display()
    );
    // The backends this build has (tch joins with its feature).
    let backends: Vec<(&str, Device)> = vec![("flex (CPU)", Device::flex())];
    println!(
        "EfficientNet-Lite0, {} images per measurement, {} threads",
        images,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (name, device) in backends {
        let model = EfficientNetLite0::load(&weights, &device)?;
        let base = forward_rate(&model, images, 16, &device);
        let one = forward_rate(&model, images.min(64), 1, &device);

        let tmp = tempfile::tempdir()?;
        let photos = bench_photos(tmp.path(), images)?;
        let config = ExemplarConfig {
            layers: vec!["_blocks.5".into(), "_blocks.10".into(), "_blocks.15".into()],
            ..ExemplarConfig::default()
        };
        let key = "efficientnet-lite0/bench".parse()?;
        let started = Instant::now();
        let report = exemplars::compute(
            &model,
            &key,
            &photos,
            &tmp.path().join("out"),
            &config,
            &device,
        )?;
        let ex = report.images as f64 / started.elapsed().as_secs_f64();
        println!("{name}");
        println!("  encoder, batch 16      {base:8.1} images/s   1.00x");
        println!(
            "  encoder, batch 1       {one:8.1} images/s   {:.2}x",
            one / base
        );
        println!(
            "  exemplars (3 layers)   {ex:8.1} images/s   {:.2}x  (decode, forward, top-k, tails, writing)",
            ex / base
        );
        println!("  peak memory            {:8.0} MB", peak_rss_mb());
    }
    Ok(())
}

/// A folder of `count` real photos: the ten fixtures, repeated with flips.
fn bench_photos(tmp: &std::path::Path, count: usize) -> Result<std::path::PathBuf> {
    let photos = tmp.join("photos");
    std::fs::create_dir_all(&photos)?;
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/efficientnet-lite0");
    let sources: Vec<image::RgbImage> = exemplars::list_images(&fixtures)?
        .iter()
        .map(|p| exemplars::load_image(p))
        .collect::<Result<_>>()?;
    anyhow::ensure!(!sources.is_empty(), "no photos in {}", fixtures.display());
    for i in 0..count {
        let mut img = sources[i % sources.len()].clone();
        if (i / sources.len()) % 2 == 1 {
            img = image::imageops::flip_horizontal(&img);
        }
        img.save(photos.join(format!("{i:05}.png")))?;
    }
    Ok(photos)
}

/// `trainer bench --onnx`: the forward pass to the chosen layers on tract at each batch size and
/// thread count (ratios against batch 1 on one thread, measured in the same run), then whole
/// exemplar runs over real photos at the fastest setting.
#[cfg(feature = "onnx")]
fn onnx_bench(path: &std::path::Path, args: &BenchArgs) -> Result<()> {
    use milan_networks::Network;
    use milan_networks::onnx::OnnxNetwork;
    if let Some(latents) = &args.latents {
        return generator_bench(path, latents, args);
    }
    let spec = args.input.spec()?;
    let probe = OnnxNetwork::load(path, &spec, 1)?;
    let layers = if args.layers.is_empty() {
        vec![
            probe
                .nodes()
                .iter()
                .rev()
                .find(|n| n.kind.is_ok())
                .map(|n| n.name.clone())
                .context("no describable node")?,
        ]
    } else {
        args.layers.clone()
    };
    let size = probe.size();
    println!(
        "{} on tract, {}x{size}x{size} inputs, layers {}, {} images per measurement, {} cores",
        path.display(),
        3,
        layers.join(","),
        args.images.unwrap_or(256),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let device = Device::flex();
    let mut base: Option<f64> = None;
    let mut best = (0.0f64, 1usize, 1usize);
    for &threads in &args.thread_counts {
        let threads = threads.max(1);
        for &batch in &args.batches {
            let batch = batch.max(1);
            let net = OnnxNetwork::load(path, &spec, threads)?.with_run_size(batch);
            // Each thread runs `batch` images at a time.
            let n = batch * threads;
            let input = synthetic_input(n * 3 * size * size);
            // One untimed pass: the plan is optimised for this batch size there.
            net.run(input.clone(), n, &layers, &device)?;
            let rounds = args.images.unwrap_or(256).div_ceil(n);
            let started = Instant::now();
            for _ in 0..rounds {
                net.run(input.clone(), n, &layers, &device)?;
            }
            let rate = (rounds * n) as f64 / started.elapsed().as_secs_f64();
            let base = *base.get_or_insert(rate);
            println!(
                "  forward, batch {batch:>3}, {threads} thread{}  {rate:8.1} images/s   {:.2}x",
                if threads == 1 { " " } else { "s" },
                rate / base
            );
            if rate > best.0 {
                best = (rate, batch, threads);
            }
        }
    }
    let (_, batch, threads) = best;
    let net = OnnxNetwork::load(path, &spec, threads)?.with_run_size(batch);
    let tmp = tempfile::tempdir()?;
    let photos = bench_photos(tmp.path(), args.images.unwrap_or(256))?;
    let config = ExemplarConfig {
        layers: layers.clone(),
        batch: batch * threads,
        uniform_size: true,
        ..ExemplarConfig::default()
    };
    let started = Instant::now();
    let report = exemplars::compute(
        &net,
        &"onnx/bench".parse()?,
        &photos,
        &tmp.path().join("out"),
        &config,
        &device,
    )?;
    let rate = report.images as f64 / started.elapsed().as_secs_f64();
    println!(
        "  exemplars, batch {batch}, {threads} thread{}  {rate:8.1} images/s   {:.2}x  (decode, forward, \
         top-k, tails, writing)",
        if threads == 1 { "" } else { "s" },
        rate / base.unwrap_or(rate)
    );
    println!("  peak memory                  {:8.0} MB", peak_rss_mb());
    Ok(())
}

/// `trainer bench --onnx GEN.onnx --latents Z.npy`: the generator's forward pass to the layers
/// and its image at each batch size (ratios against batch 1, measured in the same run), then a
/// whole exemplar run over the latents (the generated exemplar images included) and the peak
/// resident set.
#[cfg(feature = "onnx")]
fn generator_bench(
    path: &std::path::Path,
    latents: &std::path::Path,
    args: &BenchArgs,
) -> Result<()> {
    use milan_networks::generator::OnnxGenerator;
    use milan_trainer::probing::exemplars::Probe;
    use milan_trainer::probing::generated::GeneratorProbe;
    let generator = OnnxGenerator::load(path, None, (-1.0, 1.0))?;
    let extra = crate::cli::exemplars::named_inputs(&args.inputs)?;
    let probe = GeneratorProbe::new(&generator, latents, &extra)?;
    let layers = if args.layers.is_empty() {
        vec![
            generator
                .layers()
                .last()
                .cloned()
                .context("no describable node")?,
        ]
    } else {
        args.layers.clone()
    };
    let samples = probe.samples();
    let (_, h, w) = generator.image();
    println!(
        "{} on tract, a generator of {h}x{w} images, {samples} latents, layers {}, {} cores",
        path.display(),
        layers.join(","),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let device = Device::flex();
    let mut base: Option<f64> = None;
    let mut best = (0.0f64, 1usize);
    for &batch in &args.batches {
        let batch = batch.max(1).min(samples);
        probe.activations(0, batch, &layers, &device)?; // plan optimised, untimed
        let rounds = args.images.unwrap_or(256).div_ceil(batch);
        let started = Instant::now();
        for r in 0..rounds {
            let first = (r * batch) % (samples - batch + 1);
            probe.activations(first, batch, &layers, &device)?;
        }
        let rate = (rounds * batch) as f64 / started.elapsed().as_secs_f64();
        let base = *base.get_or_insert(rate);
        println!(
            "  forward, batch {batch:>3}  {rate:8.1} latents/s   {:.2}x",
            rate / base
        );
        if rate > best.0 {
            best = (rate, batch);
        }
    }
    let tmp = tempfile::tempdir()?;
    let config = ExemplarConfig {
        layers,
        batch: best.1,
        ..ExemplarConfig::default()
    };
    let started = Instant::now();
    let report = exemplars::compute_probe(
        &probe,
        &"onnx/bench".parse()?,
        &tmp.path().join("out"),
        &config,
        &device,
        None,
    )?;
    let rate = report.images as f64 / started.elapsed().as_secs_f64();
    println!(
        "  exemplars, batch {}  {rate:8.1} latents/s   {:.2}x  (forward, top-k, tails, exemplar \
         images generated again, writing)",
        best.1,
        rate / base.unwrap_or(rate)
    );
    println!("  peak memory          {:8.0} MB", peak_rss_mb());
    Ok(())
}
