//! Reading a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format, without Python.
//!
//! The file is five pickles in a row, then raw data: a magic number, the protocol version, system
//! info, the state dict itself (tensors refer to their storages by "persistent id"), and the list
//! of storage keys in the order their bytes follow; each storage is an 8-byte little-endian element
//! count and then its elements. The pickles are read by [`super::pickle`], which runs no code.
//!
//! Written here because no maintained crate reads this format (candle's and burn's readers take
//! the zip format of PyTorch >= 1.6 only, which [`super::torch_zip`] reads).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

pub use super::pickle::Tensor;
use super::pickle::{Machine, TensorRef, Value, element_size};

/// The magic number that starts a legacy PyTorch file.
const MAGIC: i128 = 0x1950a86a20f9469cfc6c;

/// Reads every tensor of a legacy state dict, in file order.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{}: not a legacy PyTorch state dict", path.display()))
}

fn parse(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut m = Machine::new(bytes);
    let magic = m.run()?;
    // The magic number is wider than i64; its low 64 bits identify it well enough.
    ensure!(
        magic == Value::Int(MAGIC as i64),
        "no legacy PyTorch magic number (a zip-format file? those are read by torch_zip)"
    );
    m.reset();
    m.run()?; // protocol version
    m.run()?; // system info
    m.reset();
    let dict = m.run()?;
    m.reset();
    let keys = match m.run()? {
        Value::List(keys) => keys
            .into_iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s),
                other => bail!("storage key {other:?} is not a string"),
            })
            .collect::<Result<Vec<_>>>()?,
        other => bail!("storage keys: {other:?} is not a list"),
    };
    ensure!(
        matches!(dict, Value::Dict(_)),
        "the state dict is {dict:?}, not a dict"
    );
    let mut storages_type: HashMap<String, String> = HashMap::new();
    let mut refs: Vec<(String, TensorRef)> = Vec::new();
    for (name, v) in dict.items() {
        let r = TensorRef::parse(v).with_context(|| name.to_string())?;
        storages_type.insert(r.storage.clone(), r.storage_type.clone());
        refs.push((name.to_owned(), r));
    }

    // The storages' bytes, in the order of the key list.
    let mut at = m.position();
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let stype = storages_type
            .get(&key)
            .with_context(|| format!("storage {key} is used by no tensor"))?;
        ensure!(at + 8 <= bytes.len(), "storage {key}: file ends early");
        let count = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) as usize;
        at += 8;
        let size = count
            .checked_mul(element_size(stype)?)
            .context("storage size overflows")?;
        ensure!(
            at.checked_add(size).is_some_and(|end| end <= bytes.len()),
            "storage {key}: file ends early"
        );
        storages.insert(key, &bytes[at..at + size]);
        at += size;
    }

    refs.into_iter()
        .map(|(name, r)| {
            let data = storages
                .get(&r.storage)
                .with_context(|| format!("{name}: storage {} missing", r.storage))?;
            Ok((name.clone(), r.gather(data).with_context(|| name)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_files_are_refused_with_a_reason() {
        let zip = b"PK\x03\x04 a zip-format checkpoint";
        let err = format!("{:#}", parse(zip).unwrap_err());
        assert!(err.contains("opcode 0x50"), "{err}");
        // A pickle of something else than the magic number.
        let not_magic = b"\x80\x02K\x07.";
        let err = format!("{:#}", parse(not_magic).unwrap_err());
        assert!(err.contains("magic number"), "{err}");
        let cut = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46";
        let err = format!("{:#}", parse(cut).unwrap_err());
        assert!(err.contains("ends early"), "{err}");
    }
}
