//! Reading a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format, without Python.
//!
//! The file is five pickles in a row, then raw data: a magic number, the protocol version, system
//! info, the state dict itself (tensors refer to their storages by "persistent id"), and the list
//! of storage keys in the order their bytes follow; each storage is an 8-byte little-endian element
//! count and then its elements. Only what state dicts use is understood: an `OrderedDict` of
//! `torch._utils._rebuild_tensor_v2` calls over float, half, double, long and int storages.
//!
//! Written here because no maintained crate reads this format (candle's and burn's readers take
//! the zip format of PyTorch >= 1.6 only); the pickle machine below runs no code and resolves no
//! global other than the few names above.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// The magic number that starts a legacy PyTorch file.
const MAGIC: i128 = 0x1950a86a20f9469cfc6c;

/// A decoded pickle value (what state dicts need of the format).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// `callable(*args)`, kept as data: nothing is ever called.
    Call(Box<Value>, Box<Value>),
    Persistent(Box<Value>),
    Mark,
}

struct Machine<'a> {
    input: Cursor<&'a [u8]>,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl Machine<'_> {
    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.input.read_exact(&mut b).context("pickle ends early")?;
        Ok(b[0])
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.input.read_exact(&mut v).context("pickle ends early")?;
        Ok(v)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Result<String> {
        let mut s = Vec::new();
        loop {
            match self.byte()? {
                b'\n' => break,
                c => s.push(c),
            }
        }
        String::from_utf8(s).context("pickle: a name is not UTF-8")
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack.pop().context("pickle: stack underflow")
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| *v == Value::Mark)
            .context("pickle: no mark")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut Value> {
        self.stack.last_mut().context("pickle: stack underflow")
    }

    /// Runs one pickle to its STOP.
    fn run(&mut self) -> Result<Value> {
        loop {
            let op = self.byte()?;
            match op {
                0x80 => {
                    self.byte()?; // PROTO n
                }
                b'.' => return self.pop(),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.byte()?;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let b = self.bytes(2)?;
                    self.stack
                        .push(Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))));
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                0x8a => {
                    let n = usize::from(self.byte()?);
                    ensure!(n <= 16, "pickle: integer of {n} bytes");
                    let b = self.bytes(n)?;
                    let mut v: i128 = 0;
                    for (i, byte) in b.iter().enumerate() {
                        v |= i128::from(*byte) << (8 * i);
                    }
                    if n > 0 && b[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    // Larger than i64 only for the magic number, which we compare below.
                    self.stack.push(Value::Int(v as i64));
                }
                b'G' => {
                    let b = self.bytes(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&b);
                    self.stack.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let b = self.bytes(n)?;
                    self.stack.push(Value::Str(
                        String::from_utf8(b).context("pickle: string is not UTF-8")?,
                    ));
                }
                b'U' => {
                    let n = usize::from(self.byte()?);
                    let b = self.bytes(n)?;
                    self.stack
                        .push(Value::Str(String::from_utf8_lossy(&b).into_owned()));
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let b = self.bytes(n)?;
                    self.stack
                        .push(Value::Str(String::from_utf8_lossy(&b).into_owned()));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                b'(' => self.stack.push(Value::Mark),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    ensure!(self.stack.len() >= n, "pickle: stack underflow");
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'q' => {
                    let k = u32::from(self.byte()?);
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                b'r' => {
                    let k = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                b'h' => {
                    let k = u32::from(self.byte()?);
                    let v = self
                        .memo
                        .get(&k)
                        .context("pickle: unknown memo key")?
                        .clone();
                    self.stack.push(v);
                }
                b'j' => {
                    let k = self.u32()?;
                    let v = self
                        .memo
                        .get(&k)
                        .context("pickle: unknown memo key")?
                        .clone();
                    self.stack.push(v);
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack
                        .push(Value::Call(Box::new(callable), Box::new(args)));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(Value::Persistent(Box::new(pid)));
                }
                b'b' => {
                    // BUILD sets an object's state (OrderedDict's `_metadata`): not needed.
                    self.pop()?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    push_item(self.top()?, k, v)?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        push_item(target, k, v)?;
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.push(v),
                        _ => bail!("pickle: APPEND to a non-list"),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.extend(items),
                        _ => bail!("pickle: APPENDS to a non-list"),
                    }
                }
                other => bail!("pickle: opcode 0x{other:02x} is not supported"),
            }
        }
    }
}

/// Adds to a dict, or to the OrderedDict a REDUCE made (its items follow as SETITEMS).
fn push_item(target: &mut Value, k: Value, v: Value) -> Result<()> {
    match target {
        Value::Dict(d) => d.push((k, v)),
        Value::Call(_, _) => {
            // OrderedDict() then SETITEMS: keep the items in a dict beside the call.
            let call = std::mem::replace(target, Value::None);
            *target = Value::Dict(vec![(Value::Str("__call__".into()), call), (k, v)]);
        }
        _ => bail!("pickle: SETITEM on something that is not a dict"),
    }
    Ok(())
}

/// A tensor of the file, as f32, with its shape.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

struct TensorRef {
    storage: String,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

fn as_usizes(v: &Value, what: &str) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                other => bail!("{what}: {other:?} is not a size"),
            })
            .collect(),
        other => bail!("{what}: {other:?} is not a tuple"),
    }
}

/// Storage dtypes: (element size, decoder).
fn element_size(storage_type: &str) -> Result<usize> {
    Ok(match storage_type {
        "FloatStorage" | "IntStorage" => 4,
        "DoubleStorage" | "LongStorage" => 8,
        "HalfStorage" => 2,
        other => bail!("storage type {other} is not supported"),
    })
}

fn decode(storage_type: &str, bytes: &[u8]) -> Vec<f32> {
    match storage_type {
        "FloatStorage" => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        "IntStorage" => bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        "DoubleStorage" => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        "LongStorage" => bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

/// Reads every tensor of a legacy state dict, in file order.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{}: not a legacy PyTorch state dict", path.display()))
}

fn parse(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut m = Machine {
        input: Cursor::new(bytes),
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    let magic = m.run()?;
    // The magic number is wider than i64; its low 64 bits identify it well enough.
    ensure!(
        magic == Value::Int(MAGIC as i64),
        "no legacy PyTorch magic number (a zip-format file? those are read by burn's own importer)"
    );
    m.stack.clear();
    m.run()?; // protocol version
    m.run()?; // system info
    m.memo.clear();
    let dict = m.run()?;
    m.memo.clear();
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

    let items = match dict {
        Value::Dict(items) => items,
        other => bail!("the state dict is {other:?}, not a dict"),
    };
    let mut storages_type: HashMap<String, String> = HashMap::new();
    let mut refs: Vec<(String, TensorRef)> = Vec::new();
    for (k, v) in items {
        let Value::Str(name) = k else { continue };
        if name == "__call__" {
            continue;
        }
        let Value::Call(f, args) = v else {
            bail!("{name}: not a tensor")
        };
        ensure!(
            *f == Value::Global("torch._utils".into(), "_rebuild_tensor_v2".into()),
            "{name}: built by {f:?}, not torch._utils._rebuild_tensor_v2"
        );
        let Value::Tuple(args) = *args else {
            bail!("{name}: arguments are not a tuple")
        };
        ensure!(args.len() >= 4, "{name}: too few arguments");
        let Value::Persistent(pid) = &args[0] else {
            bail!("{name}: storage is not a persistent id")
        };
        let Value::Tuple(pid) = pid.as_ref() else {
            bail!("{name}: persistent id is not a tuple")
        };
        let (Some(Value::Global(_, stype)), Some(Value::Str(key))) = (pid.get(1), pid.get(2))
        else {
            bail!("{name}: unexpected persistent id {pid:?}")
        };
        storages_type.insert(key.clone(), stype.clone());
        let offset = match &args[1] {
            Value::Int(n) if *n >= 0 => *n as usize,
            other => bail!("{name}: offset {other:?}"),
        };
        refs.push((
            name.clone(),
            TensorRef {
                storage: key.clone(),
                offset,
                shape: as_usizes(&args[2], &name)?,
                stride: as_usizes(&args[3], &name)?,
            },
        ));
    }

    // The storages' bytes, in the order of the key list.
    let mut at = m.input.position() as usize;
    let mut storages: HashMap<String, Vec<f32>> = HashMap::new();
    for key in keys {
        let stype = storages_type
            .get(&key)
            .with_context(|| format!("storage {key} is used by no tensor"))?;
        ensure!(at + 8 <= bytes.len(), "storage {key}: file ends early");
        let count = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) as usize;
        at += 8;
        let size = count * element_size(stype)?;
        ensure!(at + size <= bytes.len(), "storage {key}: file ends early");
        storages.insert(key, decode(stype, &bytes[at..at + size]));
        at += size;
    }

    refs.into_iter()
        .map(|(name, r)| {
            let data = storages
                .get(&r.storage)
                .with_context(|| format!("{name}: storage {} missing", r.storage))?;
            let count: usize = r.shape.iter().product();
            let mut values = Vec::with_capacity(count);
            // Strided gather: correct for views and transposes, not just contiguous tensors.
            let mut index = vec![0usize; r.shape.len()];
            for _ in 0..count {
                let pos = r.offset
                    + index
                        .iter()
                        .zip(&r.stride)
                        .map(|(i, s)| i * s)
                        .sum::<usize>();
                values.push(
                    *data
                        .get(pos)
                        .with_context(|| format!("{name}: element beyond its storage"))?,
                );
                for d in (0..index.len()).rev() {
                    index[d] += 1;
                    if index[d] < r.shape[d] {
                        break;
                    }
                    index[d] = 0;
                }
            }
            Ok((
                name,
                Tensor {
                    shape: r.shape,
                    values,
                },
            ))
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

    #[test]
    fn long1_integers_keep_their_sign() {
        let mut m = Machine {
            input: Cursor::new(b"\x8a\x02\xff\xff.".as_slice()),
            stack: Vec::new(),
            memo: HashMap::new(),
        };
        assert_eq!(m.run().unwrap(), Value::Int(-1));
    }
}
