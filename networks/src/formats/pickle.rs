//! A pickle reader that runs nothing: what PyTorch checkpoints (`torch.save`, both file formats)
//! hold, decoded as plain data.
//!
//! Calls (`REDUCE`, `NEWOBJ`) are kept as [`Value::Call`] and never made; object state (`BUILD`) is
//! dropped. Globals are refused unless they are on [`ALLOWED_GLOBALS`], so a pickle that names
//! `os.system` or `builtins.eval` is an error naming that global, not a silently skipped call:
//! such a file is not a checkpoint. The allowed names are the ones checkpoints are made of:
//! tensors and their storages, `OrderedDict`, and the spaCy/thinc blobs the MILAN authors'
//! checkpoints carry (`thinc.config.Config`, `_codecs.encode` for bytes under protocol 2).
//!
//! Written here because no maintained crate reads pickles without executing them and also
//! walks past such names (serde-pickle refuses globals outright; candle's reader reads
//! tensors only).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::rc::Rc;

use anyhow::{Context, Result, bail, ensure};

/// Globals a checkpoint may name. Nothing is ever called; the list only tells checkpoints
/// from pickles that exist to run code.
pub const ALLOWED_GLOBALS: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "FloatStorage"),
    ("torch", "DoubleStorage"),
    ("torch", "HalfStorage"),
    ("torch", "BFloat16Storage"),
    ("torch", "LongStorage"),
    ("torch", "IntStorage"),
    ("torch", "ShortStorage"),
    ("torch", "CharStorage"),
    ("torch", "ByteStorage"),
    ("torch", "BoolStorage"),
    ("thinc.config", "Config"),
    ("_codecs", "encode"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
];

/// At most this many values are built from one pickle: a file whose references expand without
/// bound (a "pickle bomb", or a structure that holds itself) is refused instead of exhausting
/// memory.
const VALUE_BUDGET: usize = 2_000_000;
/// Containers nest at most this deep.
const MAX_DEPTH: usize = 200;

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A dict, in insertion order. A dict built by a call (`OrderedDict()`, `Config()`) keeps
    /// the call under the key `"__call__"`.
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// `callable(*args)`, kept as data: nothing is ever called.
    Call(Box<Value>, Box<Value>),
    Persistent(Box<Value>),
}

impl Value {
    /// The value under string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string-keyed items of a dict (the `"__call__"` bookkeeping left out).
    pub fn items(&self) -> Vec<(&str, &Value)> {
        match self {
            Value::Dict(items) => items
                .iter()
                .filter_map(|(k, v)| match k {
                    Value::Str(s) if s != "__call__" => Some((s.as_str(), v)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(n) => Some(*n as f64),
            _ => None,
        }
    }

    /// The items of a tuple or a list.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }
}

/// What the machine works on: containers are shared, as Python's objects are, so that a memo
/// reference taken before a dict is filled (pickle memoizes `{}` first) sees its items.
#[derive(Debug, Clone)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Vec<Node>>),
    List(Rc<RefCell<Vec<Node>>>),
    Dict(Rc<RefCell<Vec<(Node, Node)>>>),
    Global(Rc<(String, String)>),
    /// A call, with the dict items and list items pickle adds to the object it makes.
    Call(Rc<CallNode>),
    Persistent(Rc<Node>),
    Mark,
}

#[derive(Debug)]
struct CallNode {
    callable: Node,
    args: Node,
    items: RefCell<Vec<(Node, Node)>>,
}

impl Node {
    /// The plain value, spending one unit of `budget` per value built.
    fn freeze(&self, budget: &mut usize, depth: usize) -> Result<Value> {
        ensure!(
            *budget > 0,
            "pickle: its references expand beyond {VALUE_BUDGET} values (refused)"
        );
        ensure!(
            depth <= MAX_DEPTH,
            "pickle: nested over {MAX_DEPTH} deep (refused)"
        );
        *budget -= 1;
        let d = depth + 1;
        let seq = |items: &[Node], budget: &mut usize| -> Result<Vec<Value>> {
            items.iter().map(|n| n.freeze(budget, d)).collect()
        };
        let pairs = |items: &[(Node, Node)], budget: &mut usize| -> Result<Vec<(Value, Value)>> {
            items
                .iter()
                .map(|(k, v)| Ok((k.freeze(budget, d)?, v.freeze(budget, d)?)))
                .collect()
        };
        Ok(match self {
            Node::None | Node::Mark => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(n) => Value::Int(*n),
            Node::Float(f) => Value::Float(*f),
            Node::Str(s) => Value::Str(s.to_string()),
            Node::Bytes(b) => Value::Bytes(b.to_vec()),
            Node::Tuple(items) => Value::Tuple(seq(items, budget)?),
            Node::List(items) => Value::List(seq(&items.borrow(), budget)?),
            Node::Dict(items) => Value::Dict(pairs(&items.borrow(), budget)?),
            Node::Global(g) => Value::Global(g.0.clone(), g.1.clone()),
            Node::Persistent(p) => Value::Persistent(Box::new(p.freeze(budget, d)?)),
            Node::Call(call) => {
                let made = Value::Call(
                    Box::new(call.callable.freeze(budget, d)?),
                    Box::new(call.args.freeze(budget, d)?),
                );
                let items = call.items.borrow();
                if items.is_empty() {
                    made
                } else {
                    let mut dict = vec![(Value::Str("__call__".into()), made)];
                    dict.extend(pairs(&items, budget)?);
                    Value::Dict(dict)
                }
            }
        })
    }
}

#[derive(Debug)]
pub struct Machine<'a> {
    input: Cursor<&'a [u8]>,
    stack: Vec<Node>,
    memo: HashMap<u32, Node>,
}

impl<'a> Machine<'a> {
    pub fn new(bytes: &'a [u8]) -> Machine<'a> {
        Machine {
            input: Cursor::new(bytes),
            stack: Vec::new(),
            memo: HashMap::new(),
        }
    }

    /// Where the next pickle (or raw data) starts.
    pub fn position(&self) -> usize {
        self.input.position() as usize
    }

    /// Forgets the memo and the stack between two pickles of one file.
    pub fn reset(&mut self) {
        self.stack.clear();
        self.memo.clear();
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.input.read_exact(&mut b).context("pickle ends early")?;
        Ok(b[0])
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let len = self.input.get_ref().len();
        let left = len - self.position().min(len);
        ensure!(n <= left, "pickle ends early");
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
            ensure!(s.len() <= 256, "pickle: a global's name is over 256 bytes");
        }
        String::from_utf8(s).context("pickle: a name is not UTF-8")
    }

    fn string(&mut self, n: usize) -> Result<Node> {
        let b = self.bytes(n)?;
        Ok(Node::Str(
            String::from_utf8(b)
                .context("pickle: string is not UTF-8")?
                .into(),
        ))
    }

    fn pop(&mut self) -> Result<Node> {
        self.stack.pop().context("pickle: stack underflow")
    }

    fn pop_mark(&mut self) -> Result<Vec<Node>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Node::Mark))
            .context("pickle: no mark")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&self) -> Result<&Node> {
        self.stack.last().context("pickle: stack underflow")
    }

    fn global(&mut self, module: String, name: String) -> Result<()> {
        ensure!(
            ALLOWED_GLOBALS
                .iter()
                .any(|(m, n)| *m == module && *n == name),
            "pickle names {module}.{name}, which no checkpoint needs: refused (this reader runs \
             no code, and a file that asks for it is not a checkpoint)"
        );
        self.stack.push(Node::Global(Rc::new((module, name))));
        Ok(())
    }

    fn memo_get(&mut self, k: u32) -> Result<()> {
        let v = self
            .memo
            .get(&k)
            .context("pickle: unknown memo key")?
            .clone();
        self.stack.push(v);
        Ok(())
    }

    fn memo_put(&mut self, k: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(k, v);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Node>) -> Result<()> {
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        match self.top()? {
            Node::Dict(d) => d.borrow_mut().extend(pairs),
            Node::Call(c) => c.items.borrow_mut().extend(pairs),
            _ => bail!("pickle: SETITEM on something that is not a dict"),
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Node>) -> Result<()> {
        match self.top()? {
            Node::List(l) => l.borrow_mut().extend(items),
            _ => bail!("pickle: APPEND to a non-list"),
        }
        Ok(())
    }

    /// Runs one pickle to its STOP.
    pub fn run(&mut self) -> Result<Value> {
        let node = self.run_nodes()?;
        let mut budget = VALUE_BUDGET;
        node.freeze(&mut budget, 0)
    }

    /// Runs opcodes to STOP and returns what it pops. Each group of opcodes below answers
    /// whether it knew `op`; none may run code.
    fn run_nodes(&mut self) -> Result<Node> {
        loop {
            let op = self.byte()?;
            if op == b'.' {
                return self.pop();
            }
            let known = self.framing(op)?
                || self.number(op)?
                || self.text(op)?
                || self.collection(op)?
                || self.memo_op(op)?
                || self.object(op)?;
            ensure!(known, "pickle: opcode 0x{op:02x} is not supported");
        }
    }

    /// PROTO and FRAME: nothing to build.
    fn framing(&mut self, op: u8) -> Result<bool> {
        match op {
            0x80 => {
                self.byte()?; // PROTO n
            }
            0x95 => {
                self.bytes(8)?; // FRAME: a length hint
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// None, booleans, integers and floats.
    fn number(&mut self, op: u8) -> Result<bool> {
        match op {
            b'N' => self.stack.push(Node::None),
            0x88 => self.stack.push(Node::Bool(true)),
            0x89 => self.stack.push(Node::Bool(false)),
            b'K' => {
                let v = self.byte()?;
                self.stack.push(Node::Int(i64::from(v)));
            }
            b'M' => {
                let b = self.bytes(2)?;
                self.stack
                    .push(Node::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))));
            }
            b'J' => {
                let v = self.u32()? as i32;
                self.stack.push(Node::Int(i64::from(v)));
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
                // Larger than i64 only for the legacy magic number, compared by its low bits.
                self.stack.push(Node::Int(v as i64));
            }
            b'G' => {
                let b = self.bytes(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&b);
                self.stack.push(Node::Float(f64::from_be_bytes(a)));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Strings and bytes.
    fn text(&mut self, op: u8) -> Result<bool> {
        match op {
            b'X' => {
                let n = self.u32()? as usize;
                let s = self.string(n)?;
                self.stack.push(s);
            }
            0x8c => {
                let n = usize::from(self.byte()?);
                let s = self.string(n)?;
                self.stack.push(s);
            }
            b'U' => {
                let n = usize::from(self.byte()?);
                let b = self.bytes(n)?;
                self.stack
                    .push(Node::Str(String::from_utf8_lossy(&b).as_ref().into()));
            }
            b'T' => {
                let n = self.u32()? as usize;
                let b = self.bytes(n)?;
                self.stack
                    .push(Node::Str(String::from_utf8_lossy(&b).as_ref().into()));
            }
            b'C' => {
                let n = usize::from(self.byte()?);
                let b = self.bytes(n)?;
                self.stack.push(Node::Bytes(b.into()));
            }
            b'B' => {
                let n = self.u32()? as usize;
                let b = self.bytes(n)?;
                self.stack.push(Node::Bytes(b.into()));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Marks, tuples, lists, sets and dicts, and the opcodes that fill them.
    fn collection(&mut self, op: u8) -> Result<bool> {
        match op {
            b'(' => self.stack.push(Node::Mark),
            b')' => self.stack.push(Node::Tuple(Rc::new(Vec::new()))),
            b']' | 0x8f => self.stack.push(Node::List(Rc::default())), // list, set
            b'}' => self.stack.push(Node::Dict(Rc::default())),
            0x90 => {
                let items = self.pop_mark()?;
                self.append(items)?; // ADDITEMS to a set
            }
            0x91 | b'l' => {
                let items = self.pop_mark()?;
                self.stack.push(Node::List(Rc::new(RefCell::new(items))));
            }
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Node::Tuple(Rc::new(items)));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                ensure!(self.stack.len() >= n, "pickle: stack underflow");
                let items = self.stack.split_off(self.stack.len() - n);
                self.stack.push(Node::Tuple(Rc::new(items)));
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            b'a' => {
                let v = self.pop()?;
                self.append(vec![v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The memo: PUT, MEMOIZE and GET.
    fn memo_op(&mut self, op: u8) -> Result<bool> {
        match op {
            b'q' => {
                let k = u32::from(self.byte()?);
                self.memo_put(k)?;
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(k)?;
            }
            0x94 => {
                let k = self.memo.len() as u32;
                self.memo_put(k)?;
            }
            b'h' => {
                let k = u32::from(self.byte()?);
                self.memo_get(k)?;
            }
            b'j' => {
                let k = self.u32()?;
                self.memo_get(k)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Globals (checked against the allow-list), calls, persistent ids and BUILD: recorded as
    /// nodes, never run.
    fn object(&mut self, op: u8) -> Result<bool> {
        match op {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Node::Str(module), Node::Str(name)) = (module, name) else {
                    bail!("pickle: STACK_GLOBAL of something that is not a name")
                };
                self.global(module.to_string(), name.to_string())?;
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.stack.push(Node::Call(Rc::new(CallNode {
                    callable,
                    args,
                    items: RefCell::default(),
                })));
            }
            b'Q' => {
                let pid = self.pop()?;
                self.stack.push(Node::Persistent(Rc::new(pid)));
            }
            b'b' => {
                // BUILD sets an object's state (OrderedDict's `_metadata`, a Config's
                // section order): not needed.
                self.pop()?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A tensor, as f32, with its shape.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Where a tensor's elements are: a storage (by key and type) and a strided view of it.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub storage: String,
    pub storage_type: String,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

impl TensorRef {
    /// The `_rebuild_tensor_v2(storage, offset, size, stride, ...)` call of a tensor (or of the
    /// tensor inside `_rebuild_parameter`), as a reference into its storage.
    pub fn parse(v: &Value) -> Result<TensorRef> {
        let Value::Call(f, args) = v else {
            bail!("not a tensor")
        };
        let Value::Global(module, name) = f.as_ref() else {
            bail!("built by {f:?}, not a tensor function")
        };
        let args = args.as_seq().context("arguments are not a tuple")?;
        if module == "torch._utils" && name == "_rebuild_parameter" {
            return TensorRef::parse(args.first().context("a parameter without its tensor")?);
        }
        ensure!(
            module == "torch._utils" && name == "_rebuild_tensor_v2",
            "built by {module}.{name}, not torch._utils._rebuild_tensor_v2"
        );
        ensure!(args.len() >= 4, "too few arguments");
        let Value::Persistent(pid) = &args[0] else {
            bail!("storage is not a persistent id")
        };
        let pid = pid.as_seq().context("persistent id is not a tuple")?;
        let (Some(Value::Global(_, stype)), Some(Value::Str(key))) = (pid.get(1), pid.get(2))
        else {
            bail!("unexpected persistent id {pid:?}")
        };
        let offset = match &args[1] {
            Value::Int(n) if *n >= 0 => *n as usize,
            other => bail!("offset {other:?}"),
        };
        Ok(TensorRef {
            storage: key.clone(),
            storage_type: stype.clone(),
            offset,
            shape: as_usizes(&args[2], "size")?,
            stride: as_usizes(&args[3], "stride")?,
        })
    }

    /// The tensor's elements gathered from its storage's bytes (views and transposes
    /// included).
    pub fn gather(&self, storage: &[u8]) -> Result<Tensor> {
        let (size, decode) = element(&self.storage_type)?;
        let count: usize = self.shape.iter().product();
        let mut values = Vec::with_capacity(count);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..count {
            let pos = self.offset
                + index
                    .iter()
                    .zip(&self.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            let bytes = storage
                .get(pos * size..(pos + 1) * size)
                .context("an element lies beyond its storage (a truncated file?)")?;
            values.push(decode(bytes));
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(Tensor {
            shape: self.shape.clone(),
            values,
        })
    }
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
        Value::Call(_, args) => as_usizes(args, what), // torch.Size((..)) under old pickles
        other => bail!("{what}: {other:?} is not a tuple"),
    }
}

/// Bytes per element of a storage type.
pub fn element_size(storage_type: &str) -> Result<usize> {
    element(storage_type).map(|(size, _)| size)
}

/// One element's little-endian bytes to f32.
type Decoder = fn(&[u8]) -> f32;

/// A storage type's element size and its decoder, chosen once per tensor.
fn element(storage_type: &str) -> Result<(usize, Decoder)> {
    Ok(match storage_type {
        "FloatStorage" => (4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        "IntStorage" => (4, |c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32),
        "DoubleStorage" => (8, |c| {
            f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32
        }),
        "LongStorage" => (8, |c| {
            i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32
        }),
        "HalfStorage" => (2, |c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
        "BFloat16Storage" => (2, |c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        "ShortStorage" => (2, |c| f32::from(i16::from_le_bytes([c[0], c[1]]))),
        "CharStorage" => (1, |c| f32::from(c[0] as i8)),
        "ByteStorage" | "BoolStorage" => (1, |c| f32::from(c[0])),
        other => bail!("storage type {other} is not supported"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long1_integers_keep_their_sign() {
        let mut m = Machine::new(b"\x8a\x02\xff\xff.");
        assert_eq!(m.run().unwrap(), Value::Int(-1));
    }

    #[test]
    fn globals_that_run_code_are_refused_by_name() {
        // cos\nsystem\n(S'echo pwned'\ntR.
        let err = Machine::new(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")
            .run()
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("os.system") && msg.contains("refused"),
            "{msg}"
        );
        let err = Machine::new(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.")
            .run()
            .unwrap_err();
        assert!(format!("{err:#}").contains("builtins.eval"), "{err:#}");
    }

    #[test]
    fn memo_bombs_and_cycles_are_refused() {
        // A tuple of the previous tuple twice, doubled 40 times through the memo.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..40 {
            p.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        p.push(b'.');
        let err = Machine::new(&p).run().unwrap_err();
        assert!(format!("{err:#}").contains("expand beyond"), "{err:#}");
        // A list that holds itself.
        let err = Machine::new(b"\x80\x02]q\x00h\x00a.").run().unwrap_err();
        assert!(format!("{err:#}").contains("deep"), "{err:#}");
    }

    #[test]
    fn a_dict_memoized_before_its_items_shows_them_when_referenced() {
        // d = {}; memo 0; d['k'] = 1; (d, memo[0])
        let v = Machine::new(b"\x80\x02}q\x00X\x01\x00\x00\x00kK\x01sh\x00\x86.")
            .run()
            .unwrap();
        let items = v.as_seq().unwrap();
        assert_eq!(items[1].get("k"), Some(&Value::Int(1)));
        assert_eq!(items[0], items[1]);
    }

    #[test]
    fn spacy_blobs_are_walked_past_as_data() {
        // Config() with one item, then _codecs.encode('ab', 'latin1'), in a tuple.
        let p = b"\x80\x02cthinc.config\nConfig\n)\x81X\x01\x00\x00\x00kK\x01sc_codecs\nencode\nX\x02\x00\x00\x00abX\x06\x00\x00\x00latin1\x86R\x86.";
        let v = Machine::new(p).run().unwrap();
        let items = v.as_seq().unwrap();
        assert_eq!(items[0].get("k"), Some(&Value::Int(1)));
        assert!(matches!(items[1], Value::Call(_, _)));
    }
}
