//! Reading PyTorch's zip-format checkpoints (`torch.save` since 1.6) without Python: the archive
//! holds `<name>/data.pkl` (the pickled object, read by [`super::pickle`], which runs no code),
//! `<name>/data/<key>` (each storage's raw little-endian elements) and bookkeeping
//! (`version`, `byteorder`). Storages are read only when a tensor is asked for, so a 263 MB
//! checkpoint whose encoder is not needed costs its pickle only.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use super::pickle::{Machine, Tensor, TensorRef, Value};

/// An opened zip-format checkpoint: its pickled object, and its storages on demand.
#[derive(Debug)]
pub struct TorchZip {
    path: PathBuf,
    archive: zip::ZipArchive<BufReader<File>>,
    prefix: String,
    /// The pickled object (a state dict, or any dictionary holding tensors).
    pub root: Value,
    storages: HashMap<String, Vec<u8>>,
}

/// Whether `path` starts like a zip archive (a zip-format checkpoint).
pub fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

impl TorchZip {
    pub fn open(path: &Path) -> Result<TorchZip> {
        let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let mut archive = zip::ZipArchive::new(BufReader::new(file)).with_context(|| {
            format!(
                "{}: not a complete zip archive (a truncated download? fetch it again)",
                path.display()
            )
        })?;
        let pkl = archive
            .file_names()
            .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .map(str::to_owned)
            .with_context(|| {
                format!(
                    "{}: a zip archive without <name>/data.pkl: not a PyTorch checkpoint",
                    path.display()
                )
            })?;
        let prefix = pkl.trim_end_matches("data.pkl").to_owned();
        let bytes = read_entry(&mut archive, &pkl, path)?;
        let root = Machine::new(&bytes)
            .run()
            .with_context(|| format!("{}: entry {pkl}", path.display()))?;
        Ok(TorchZip {
            path: path.to_owned(),
            archive,
            prefix,
            root,
            storages: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor `value` (a rebuilt tensor of the pickle), read from its storage; `name`
    /// names it in errors.
    pub fn tensor(&mut self, name: &str, value: &Value) -> Result<Tensor> {
        let r =
            TensorRef::parse(value).with_context(|| format!("{}: {name}", self.path.display()))?;
        if !self.storages.contains_key(&r.storage) {
            let entry = format!("{}data/{}", self.prefix, r.storage);
            let bytes = read_entry(&mut self.archive, &entry, &self.path)?;
            self.storages.insert(r.storage.clone(), bytes);
        }
        let storage = &self.storages[&r.storage];
        r.gather(storage).with_context(|| {
            format!(
                "{}: {name} (entry {}data/{})",
                self.path.display(),
                self.prefix,
                r.storage
            )
        })
    }

    /// Every tensor of the dictionary `dict` (a state dict), by key, in file order; storages
    /// are released once read.
    pub fn tensors_of(&mut self, dict: &Value) -> Result<Vec<(String, Tensor)>> {
        ensure!(
            matches!(dict, Value::Dict(_)),
            "{}: the state dict is not a dictionary",
            self.path.display()
        );
        let mut out = Vec::new();
        for (name, v) in dict.items() {
            out.push((name.to_owned(), self.tensor(name, v)?));
        }
        self.storages.clear();
        Ok(out)
    }
}

fn read_entry(
    archive: &mut zip::ZipArchive<BufReader<File>>,
    name: &str,
    path: &Path,
) -> Result<Vec<u8>> {
    let mut entry = match archive.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => {
            bail!("{}: entry {name} is missing", path.display())
        }
        Err(e) => bail!("{}: entry {name}: {e}", path.display()),
    };
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}: entry {name} is damaged", path.display()))?;
    Ok(bytes)
}

/// Every tensor of a state dict saved by `torch.save(model.state_dict())` (torchvision's
/// released weights, for one).
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut file = TorchZip::open(path)?;
    let root = std::mem::replace(&mut file.root, Value::None);
    file.tensors_of(&root)
}
