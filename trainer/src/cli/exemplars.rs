//! `trainer exemplars`: exemplar sets of a network's units over a folder of images.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use milan_networks::Network;
use milan_networks::efficientnet::EfficientNetLite0;
#[cfg(feature = "onnx")]
use milan_networks::generator::OnnxGenerator;
use milan_networks::input_spec::InputSpec;
#[cfg(feature = "onnx")]
use milan_networks::onnx::OnnxNetwork;
use milan_shared::ModelKey;
use milan_trainer::probing::exemplars::{self, ExemplarConfig};
#[cfg(feature = "onnx")]
use milan_trainer::probing::generated::GeneratorProbe;

#[derive(Debug, clap::Args)]
pub struct ExemplarsArgs {
    /// The network: a model.onnx file (any network exported to ONNX; `trainer layers` lists its
    /// layers), efficientnet-lite0, or resnet18/34/50/101/152 (with --weights).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub onnx: OnnxArgs,
    /// Its weights (default: the model's asset).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Folder of images (PNG, JPEG; searched recursively, sorted by relative path).
    #[arg(long, required_unless_present = "latents", conflicts_with = "latents")]
    pub images: Option<PathBuf>,
    /// A generator instead (an ONNX model whose inputs are latents): its latent dataset, one
    /// row per sample (`trainer latents` writes one, with Z.json naming every input's file).
    /// Exemplars are the generated images, ids index the latents.
    #[arg(long)]
    pub latents: Option<PathBuf>,
    /// More generator inputs, NAME=FILE.npy (repeat): float32 rows, or int64 class ids (a
    /// float input of width C gets them one-hot).
    #[arg(long = "inputs", value_name = "NAME=FILE.npy", requires = "latents")]
    pub inputs: Vec<String>,
    /// The generator's image output node (default: its one output shaped (N, 3, H, W)).
    #[arg(long, requires = "latents")]
    pub output: Option<String>,
    /// The value range of the generated images, low,high (tanh generators: -1,1).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "-1,1",
        requires = "latents"
    )]
    pub output_range: Vec<f32>,
    /// Layers, comma-separated (e.g. _blocks.5,_blocks.10,_blocks.15; ONNX node names).
    #[arg(long, value_delimiter = ',', required = true)]
    pub layers: Vec<String>,
    /// Exemplars per unit.
    #[arg(long, default_value_t = 15)]
    pub k: usize,
    /// Mask threshold: this quantile of the unit's activations over all images.
    #[arg(long, default_value_t = 0.99)]
    pub quantile: f64,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Root of the MILANNOTATIONS output: <out>/<key>/<layer>/.
    #[arg(long)]
    pub out: PathBuf,
    /// The folder's model key, arch/dataset (default: <model name>/<name of the images folder>).
    #[arg(long)]
    pub key: Option<String>,
}

/// How an ONNX model is fed and read.
#[derive(Debug, Clone, clap::Args)]
pub struct OnnxArgs {
    /// Side of the square input the images are resized to (default: the model's declared input
    /// size, else 224). Masks and stored images stay 224x224.
    #[arg(long)]
    pub input_size: Option<usize>,
    /// Per-channel mean of x/255 subtracted before the network (default: ImageNet's).
    #[arg(long, value_delimiter = ',')]
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviation of x/255 (default: ImageNet's).
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
    /// Tokens before the patch grid in (N, T, C) outputs (class and register tokens); detected
    /// when absent: the fewest (0 to 17) that leave a square grid.
    #[arg(long)]
    pub prefix_tokens: Option<usize>,
    /// Threads for each matrix product of an ONNX model (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Layout of rank-4 outputs whose axes the graph does not settle: nchw (channels first),
    /// nhwc (channels last) or tokens (refuse them). By default the graph decides where it
    /// says (convolutions, transposes), else a square map's shape; an output neither settles is
    /// refused, asking for this.
    #[arg(long, value_parser = ["nchw", "nhwc", "tokens"])]
    pub layout: Option<String>,
}

impl OnnxArgs {
    pub fn spec(&self) -> Result<InputSpec> {
        let mut spec = InputSpec {
            size: self.input_size,
            prefix_tokens: self.prefix_tokens,
            layout: self
                .layout
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: String| anyhow::anyhow!("--layout: {e}"))?,
            ..InputSpec::default()
        };
        for (given, into, what) in [
            (&self.mean, &mut spec.mean, "--mean"),
            (&self.std, &mut spec.std, "--std"),
        ] {
            if let Some(v) = given {
                anyhow::ensure!(v.len() == 3, "{what} takes three numbers: r,g,b");
                into.copy_from_slice(v);
            }
        }
        Ok(spec)
    }

    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Whether `model` names an ONNX file rather than a built-in network.
pub fn is_onnx(model: &str) -> bool {
    model.to_ascii_lowercase().ends_with(".onnx") || Path::new(model).is_file()
}

/// The network `model` names, and the architecture name for its key.
pub fn open_network(
    model: &str,
    weights: Option<&PathBuf>,
    onnx: &OnnxArgs,
    device: &Device,
) -> Result<(Box<dyn Network>, String)> {
    if is_onnx(model) {
        return open_onnx(model, onnx);
    }
    let net: Box<dyn Network> = match model {
        "efficientnet-lite0" => Box::new(EfficientNetLite0::load(
            &weights_of(model, weights)?,
            device,
        )?),
        name if name.starts_with("resnet") => {
            let depth = milan_networks::resnet::Depth::parse(name)?;
            let weights = weights.with_context(|| {
                format!("{name} needs --weights: a torchvision state dict saved as safetensors")
            })?;
            Box::new(milan_networks::resnet::ResNet::load(
                weights, depth, device,
            )?)
        }
        other => bail!(
            "unknown model {other:?}: give a .onnx file, efficientnet-lite0 or \
             resnet18/34/50/101/152"
        ),
    };
    Ok((net, model.to_owned()))
}

/// An ONNX model file as a network, and its file name as the architecture's.
#[cfg(feature = "onnx")]
fn open_onnx(model: &str, onnx: &OnnxArgs) -> Result<(Box<dyn Network>, String)> {
    let path = Path::new(model);
    let net = OnnxNetwork::load(path, &onnx.spec()?, onnx.threads())?;
    let arch = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .context("the model file has no name")?;
    Ok((Box::new(net), arch))
}

#[cfg(not(feature = "onnx"))]
fn open_onnx(model: &str, _onnx: &OnnxArgs) -> Result<(Box<dyn Network>, String)> {
    Err(milan_trainer::util::onnx_feature::missing(model))
}

/// The model key of an exemplar folder: given, or <arch>/<name of the images folder>.
pub fn key_for(given: Option<&str>, arch: &str, images: &Path) -> Result<ModelKey> {
    if let Some(k) = given {
        return k
            .parse()
            .with_context(|| format!("--key {k:?}: give arch/dataset, folder-safe names"));
    }
    let dataset = images
        .canonicalize()
        .with_context(|| format!("{}: no such folder", images.display()))?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the images folder has no name")?;
    format!("{arch}/{dataset}")
        .parse()
        .with_context(|| format!("{arch}/{dataset} cannot name a model folder: give --key"))
}

/// EfficientNet-Lite0's weights: given, or the asset.
fn weights_of(model: &str, given: Option<&PathBuf>) -> Result<PathBuf> {
    if let Some(w) = given {
        return Ok(w.clone());
    }
    let file = milan_trainer::assets::path(model)?.join("efficientnet-lite0-57934424.pth");
    anyhow::ensure!(
        file.is_file(),
        "no weights at {}: run `trainer assets fetch {model}`, or pass --weights",
        file.display()
    );
    Ok(file)
}

pub fn run(args: &ExemplarsArgs) -> Result<()> {
    if let Some(latents) = &args.latents {
        return run_generator(args, latents);
    }
    let images = args.images.as_deref().context("--images or --latents")?;
    let device = Device::flex();
    let (net, arch) = open_network(&args.model, args.weights.as_ref(), &args.onnx, &device)?;
    let key = key_for(args.key.as_deref(), &arch, images)?;
    let config = ExemplarConfig {
        layers: args.layers.clone(),
        k: args.k,
        quantile: args.quantile,
        batch: args.batch,
        uniform_size: is_onnx(&args.model),
        ..ExemplarConfig::default()
    };
    let started = Instant::now();
    let report = exemplars::compute(net.as_ref(), &key, images, &args.out, &config, &device)?;
    print_report(&report, started, "images");
    Ok(())
}

#[cfg(not(feature = "onnx"))]
fn run_generator(args: &ExemplarsArgs, _latents: &Path) -> Result<()> {
    Err(milan_trainer::util::onnx_feature::missing(&args.model))
}

/// A generator's exemplars over its latents.
#[cfg(feature = "onnx")]
fn run_generator(args: &ExemplarsArgs, latents: &Path) -> Result<()> {
    anyhow::ensure!(
        is_onnx(&args.model),
        "--latents needs a generator exported to ONNX (--model GEN.onnx)"
    );
    let [low, high] = args.output_range[..] else {
        bail!("--output-range takes two numbers: low,high");
    };
    let path = Path::new(&args.model);
    let generator = OnnxGenerator::load(path, args.output.as_deref(), (low, high))?;
    let extra = named_inputs(&args.inputs)?;
    let probe = GeneratorProbe::new(&generator, latents, &extra)?;
    let arch = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .context("the model file has no name")?;
    let key: ModelKey = match args.key.as_deref() {
        Some(k) => k
            .parse()
            .with_context(|| format!("--key {k:?}: give arch/dataset, folder-safe names"))?,
        None => {
            let stem = latents
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .context("the latent file has no name")?;
            format!("{arch}/{stem}")
                .parse()
                .with_context(|| format!("{arch}/{stem} cannot name a model folder: give --key"))?
        }
    };
    let config = ExemplarConfig {
        layers: args.layers.clone(),
        k: args.k,
        quantile: args.quantile,
        batch: args.batch,
        ..ExemplarConfig::default()
    };
    let started = Instant::now();
    let report = exemplars::compute_probe(&probe, &key, &args.out, &config, &Device::flex(), None)?;
    print_report(&report, started, "latents");
    Ok(())
}

fn print_report(report: &exemplars::Report, started: Instant, noun: &str) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {} {noun}, {} in {secs:.1} s ({:.1} {noun}/s, {} pass{})",
        report.folder.display(),
        report.images,
        report
            .layers
            .iter()
            .map(|(l, u)| format!("{l} ({u} units)"))
            .collect::<Vec<_>>()
            .join(", "),
        (report.passes * report.images) as f64 / secs,
        report.passes,
        if report.passes == 1 { "" } else { "es" }
    );
}

#[cfg(feature = "train")]
/// The exemplars of `layers` of `model` over `images` for `describe --model`: computed once into
/// `<cache>/exemplars/<hash>/` and reused while the model file, the layers, the input settings
/// and the images (names, sizes, modification times) stay the same. Returns the model folder.
pub fn cached_exemplars(
    model: &str,
    layers: &[String],
    images: &Path,
    onnx: &OnnxArgs,
    cache: &Path,
) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let device = Device::flex();
    let (net, arch) = open_network(model, None, onnx, &device)?;
    let key = key_for(None, &arch, images)?;
    let config = ExemplarConfig {
        layers: layers.to_vec(),
        uniform_size: is_onnx(model),
        ..ExemplarConfig::default()
    };
    let mut h = Sha256::new();
    h.update(b"milan-rs exemplars 1\n");
    if is_onnx(model) {
        let mut file = std::fs::File::open(model).with_context(|| format!("reading {model}"))?;
        std::io::copy(&mut file, &mut h).with_context(|| format!("reading {model}"))?;
    } else {
        h.update(model.as_bytes());
    }
    h.update(
        format!(
            "{:?} {:?} {} {} {}\n",
            layers,
            onnx.spec()?,
            net.input_size(),
            config.k,
            config.quantile
        )
        .as_bytes(),
    );
    for f in exemplars::list_images(images)? {
        let meta = std::fs::metadata(&f).with_context(|| format!("reading {}", f.display()))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(
            format!(
                "{} {} {modified}\n",
                f.strip_prefix(images).unwrap_or(&f).display(),
                meta.len()
            )
            .as_bytes(),
        );
    }
    let hash = hex::encode(&h.finalize()[..8]);
    cached_folder(cache, &hash, &key, "images", |root| {
        exemplars::compute(net.as_ref(), &key, images, root, &config, &device)
    })
}

#[cfg(feature = "train")]
/// The exemplar folder of `key` under `<cache>/exemplars/<hash>/`: reused when it is there, else
/// made by `compute` (given the root to write into) and reported.
fn cached_folder(
    cache: &Path,
    hash: &str,
    key: &ModelKey,
    noun: &str,
    compute: impl FnOnce(&Path) -> Result<exemplars::Report>,
) -> Result<PathBuf> {
    let root = cache.join("exemplars").join(hash);
    let folder = root.join(key.arch()).join(key.dataset());
    if folder.is_dir() {
        eprintln!("reusing the exemplars at {}", folder.display());
        return Ok(folder);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let started = Instant::now();
    let report = compute(&root)?;
    eprintln!(
        "exemplars of {} units over {} {noun} in {:.1} s, cached at {}",
        report.layers.iter().map(|(_, u)| u).sum::<usize>(),
        report.images,
        started.elapsed().as_secs_f64(),
        report.folder.display()
    );
    Ok(report.folder)
}

#[cfg(feature = "train")]
/// `--inputs NAME=FILE.npy` pairs.
pub fn named_inputs(specs: &[String]) -> Result<Vec<(String, PathBuf)>> {
    specs
        .iter()
        .map(|spec| {
            let (name, file) = spec
                .split_once('=')
                .with_context(|| format!("--inputs {spec:?}: give NAME=FILE.npy"))?;
            Ok((name.to_owned(), PathBuf::from(file)))
        })
        .collect()
}

#[cfg(feature = "train")]
/// A generator's exemplars for `describe --model GEN.onnx --latents`: computed once into
/// `<cache>/exemplars/<hash>/` (the hash of the model file, the layers and every latent file's
/// bytes) and reused. Images in [-1, 1], the output found by its shape. Returns the model folder.
pub fn cached_generator_exemplars(
    model: &str,
    layers: &[String],
    latents: &Path,
    inputs: &[String],
    cache: &Path,
) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let path = Path::new(model);
    let extra = named_inputs(inputs)?;
    let mut h = Sha256::new();
    h.update(b"milan-rs generator exemplars 1\n");
    let mut files = vec![path.to_owned(), latents.to_owned()];
    files.extend(extra.iter().map(|(_, f)| f.clone()));
    // The recipe names (and hashes) every input file the latents come with.
    let recipe = milan_trainer::probing::latents::recipe_path(latents);
    if recipe.is_file() {
        files.push(recipe);
    }
    for f in &files {
        let mut file =
            std::fs::File::open(f).with_context(|| format!("reading {}", f.display()))?;
        std::io::copy(&mut file, &mut h).with_context(|| format!("reading {}", f.display()))?;
    }
    h.update(format!("{layers:?} {inputs:?}\n").as_bytes());
    let hash = hex::encode(&h.finalize()[..8]);
    let arch = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .context("the model file has no name")?;
    let key: ModelKey = format!("{arch}/latents")
        .parse()
        .with_context(|| format!("{arch}/latents cannot name a model folder"))?;
    let config = ExemplarConfig {
        layers: layers.to_vec(),
        ..ExemplarConfig::default()
    };
    // The generator and its latents are read only when the exemplars are not cached.
    cached_folder(cache, &hash, &key, "latents", |root| {
        #[cfg(feature = "onnx")]
        {
            let generator = OnnxGenerator::load(path, None, (-1.0, 1.0))?;
            let probe = GeneratorProbe::new(&generator, latents, &extra)?;
            exemplars::compute_probe(&probe, &key, root, &config, &Device::flex(), None)
        }
        #[cfg(not(feature = "onnx"))]
        {
            let _ = (root, &config);
            Err(milan_trainer::util::onnx_feature::missing(model))
        }
    })
}
