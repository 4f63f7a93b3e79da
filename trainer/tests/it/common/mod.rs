//! What several trainer tests share: where the fetched assets are, and ResNets with small
//! random weights in torchvision's layout.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

/// An asset path as the trainer run from the repository root sees it.
fn from_root(dir: PathBuf) -> PathBuf {
    if dir.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)
    } else {
        dir
    }
}

/// The fetched assets the end-to-end runs need (EfficientNet-Lite0 and all-MiniLM-L6-v2), or a
/// failure that says how to get them.
pub fn assets_present() {
    for (file, asset) in [
        ("efficientnet-lite0-57934424.pth", "efficientnet-lite0"),
        ("model.safetensors", "minilm"),
    ] {
        let path = from_root(milan_trainer::assets::path(asset).unwrap()).join(file);
        assert!(
            path.is_file(),
            "{} is missing: run `cargo run -p milan-trainer -- assets fetch {asset}` in the \
             repository root (scripts/test does)",
            path.display()
        );
    }
}

/// EfficientNet-Lite0's weights, or a failure that says how to get them.
pub fn efficientnet_weights() -> PathBuf {
    let file = from_root(milan_trainer::assets::path("efficientnet-lite0").unwrap())
        .join("efficientnet-lite0-57934424.pth");
    assert!(
        file.is_file(),
        "the EfficientNet-Lite0 weights are not at {}: run `trainer assets fetch efficientnet-lite0` \
         from the repository root (scripts/test does)",
        file.display()
    );
    file
}

/// The folder scripts/export-onnx writes (ONNX models and PyTorch's recorded activations), or a
/// failure that says how to make it.
#[allow(dead_code)]
pub fn onnx_exports() -> PathBuf {
    let dir = from_root(milan_trainer::assets::assets_dir()).join("onnx");
    assert!(
        dir.join("manifest.json").is_file(),
        "the ONNX exports are not at {}: run scripts/export-onnx from the repository root \
         (scripts/test does; it needs `trainer assets fetch efficientnet-lite0` first)",
        dir.display()
    );
    dir
}

/// torchvision's state-dict keys and shapes, written out independently of the loader.
pub fn torchvision_keys(blocks: [usize; 4], bottleneck: bool) -> Vec<(String, Vec<usize>)> {
    let mut keys = Vec::new();
    let bn = |keys: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
        for s in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("{p}.{s}"), vec![c]));
        }
        keys.push((format!("{p}.num_batches_tracked"), vec![]));
    };
    keys.push(("conv1.weight".into(), vec![64, 3, 7, 7]));
    bn(&mut keys, "bn1", 64);
    let mut inp = 64;
    for (s, &n) in blocks.iter().enumerate() {
        let mid = 64 << s;
        let out = if bottleneck { mid * 4 } else { mid };
        for b in 0..n {
            let p = format!("layer{}.{b}", s + 1);
            if bottleneck {
                keys.push((format!("{p}.conv1.weight"), vec![mid, inp, 1, 1]));
                bn(&mut keys, &format!("{p}.bn1"), mid);
                keys.push((format!("{p}.conv2.weight"), vec![mid, mid, 3, 3]));
                bn(&mut keys, &format!("{p}.bn2"), mid);
                keys.push((format!("{p}.conv3.weight"), vec![out, mid, 1, 1]));
                bn(&mut keys, &format!("{p}.bn3"), out);
            } else {
                keys.push((format!("{p}.conv1.weight"), vec![out, inp, 3, 3]));
                bn(&mut keys, &format!("{p}.bn1"), out);
                keys.push((format!("{p}.conv2.weight"), vec![out, out, 3, 3]));
                bn(&mut keys, &format!("{p}.bn2"), out);
            }
            if b == 0 && (s > 0 || inp != out) {
                keys.push((format!("{p}.downsample.0.weight"), vec![out, inp, 1, 1]));
                bn(&mut keys, &format!("{p}.downsample.1"), out);
            }
            inp = out;
        }
    }
    keys.push(("fc.weight".into(), vec![1000, inp]));
    keys.push(("fc.bias".into(), vec![1000]));
    keys
}

/// Small random weights (variances positive), as a safetensors file.
pub fn write_random(path: &std::path::Path, keys: &[(String, Vec<usize>)], seed: u64) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut buffers: BTreeMap<String, (Vec<u8>, Vec<usize>, Dtype)> = BTreeMap::new();
    for (name, shape) in keys {
        if name.ends_with("num_batches_tracked") {
            buffers.insert(
                name.clone(),
                (0i64.to_le_bytes().to_vec(), shape.clone(), Dtype::I64),
            );
            continue;
        }
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let u = next();
                // Batch-norm variances and gammas positive, the rest centred.
                if name.ends_with("running_var") || (name.ends_with(".weight") && shape.len() == 1)
                {
                    0.5 + u
                } else {
                    (u - 0.5) * 2.0 * (3.0 / fan_in as f32).sqrt()
                }
            })
            .collect();
        buffers.insert(
            name.clone(),
            (
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                shape.clone(),
                Dtype::F32,
            ),
        );
    }
    let views: Vec<(String, TensorView)> = buffers
        .iter()
        .map(|(k, (b, s, d))| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Writes float tensors as `torch.save(state_dict)` does since PyTorch 1.6: a zip holding
/// `archive/data.pkl` (protocol 2: an `OrderedDict` of `_rebuild_tensor_v2` calls over
/// persistent storage ids) and `archive/data/<n>`. A test-side writer, so that readers can be
/// checked on files of any size (torchvision's own files are the user's to bring; the reader is
/// held to files PyTorch wrote in trainer/tests/fixtures/pretrained).
pub fn write_torch_zip(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    fn unicode(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    }
    fn int(p: &mut Vec<u8>, n: usize) {
        p.push(b'J');
        p.extend_from_slice(&(n as i32).to_le_bytes());
    }
    fn ints(p: &mut Vec<u8>, ns: &[usize]) {
        p.push(b'(');
        for &n in ns {
            int(p, n);
        }
        p.push(b't');
    }
    let mut p = b"\x80\x02ccollections\nOrderedDict\n)R(".to_vec();
    for (i, (name, shape, _)) in tensors.iter().enumerate() {
        unicode(&mut p, name);
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        unicode(&mut p, "storage");
        p.extend_from_slice(b"ctorch\nFloatStorage\n");
        unicode(&mut p, &i.to_string());
        unicode(&mut p, "cpu");
        int(&mut p, shape.iter().product());
        p.extend_from_slice(b"tQ");
        int(&mut p, 0);
        ints(&mut p, shape);
        let strides: Vec<usize> = (0..shape.len())
            .map(|d| shape[d + 1..].iter().product())
            .collect();
        ints(&mut p, &strides);
        p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtR");
    }
    p.extend_from_slice(b"u.");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut entry = |name: &str, bytes: &[u8]| {
        zip.start_file(name, options).unwrap();
        std::io::Write::write_all(&mut zip, bytes).unwrap();
    };
    entry("archive/data.pkl", &p);
    for (i, (_, _, values)) in tensors.iter().enumerate() {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        entry(&format!("archive/data/{i}"), &bytes);
    }
    entry("archive/version", b"3\n");
    zip.finish().unwrap();
}

/// A local HTTP server standing in for a download site (the authors' site, the Hugging Face
/// Hub): files by path (query included), range requests, and one dropped connection on demand.
pub mod site {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// What the server was asked: (path, Range header).
    pub type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;

    /// Serves `files` over HTTP/1.1 until the test ends; the first answer for `cut.0` stops
    /// after `cut.1` bytes of its body (a dropped connection).
    pub fn serve(files: HashMap<String, Vec<u8>>, cut: Option<(String, usize)>) -> (String, Log) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log: Log = Arc::default();
        let seen = log.clone();
        std::thread::spawn(move || {
            let mut cut = cut;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                let path = first.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut range = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("range")
                    {
                        range = Some(v.trim().to_owned());
                    }
                }
                seen.lock().unwrap().push((path.clone(), range.clone()));
                let Some(body) = files.get(&path) else {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                };
                let from: usize = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                let part = &body[from.min(body.len())..];
                let status = if from > 0 {
                    format!(
                        "206 Partial Content\r\nContent-Range: bytes {from}-{}/{}",
                        body.len() - 1,
                        body.len()
                    )
                } else {
                    "200 OK".to_owned()
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    part.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let send = match &cut {
                    Some((p, n)) if *p == path => {
                        let n = *n;
                        cut = None;
                        &part[..n]
                    }
                    _ => part,
                };
                let _ = stream.write_all(send);
                let _ = stream.flush();
            }
        });
        (base, log)
    }
}
