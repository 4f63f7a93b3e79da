//! `trainer bench --model`: the MILAN model at the reference dims (ResNet-152's 3904-dim features,
//! 15 exemplars, embedding 128, hidden 512, a 1000-token vocabulary, 15-token descriptions):
//! training steps per second of the captioner (batch 64) and the language model (batch 128), and
//! neurons described per second greedily and with beam 50 + PMI, on each backend this build has.
//! Every figure is also printed as a ratio to a baseline measured in the same run: PyTorch's with
//! `--vs-pytorch` (the same model written in PyTorch, `bench_model.py`, run by the Python of
//! scripts/install-libtorch's virtualenv), else the flex backend's. Each training step is timed
//! twice: as the model runs, and with the LSTM's recurrences through the `Tensor` API instead of
//! their own backward passes (`lstm::composed_only`), to show what those passes buy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use milan_model::decoding::{DecodeConfig, greedy, milan_pmi};
use milan_model::lstm;
use milan_model::model::{Captioner, LanguageModel};
use milan_model::train::MilanConfig;
use milan_model::vocab::{Padded, pad};

const FEATURES: usize = 3904;
const K: usize = 15;
const VOCAB: usize = 1000;

fn batch(n: usize) -> Padded {
    let seqs: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            std::iter::once(1)
                .chain((0..14).map(|t| 4 + (i * 31 + t * 17) % (VOCAB - 4)))
                .chain(std::iter::once(2))
                .collect()
        })
        .collect();
    let refs: Vec<&[usize]> = seqs.iter().map(Vec::as_slice).collect();
    pad(&refs)
}

/// (captioner steps/s, LM steps/s, greedy neurons/s, PMI neurons/s, and the two training rates
/// again with the LSTM's recurrences through the `Tensor` API: `lstm::composed_only`)
fn measure(device: &Device, steps: usize) -> [f64; 6] {
    let ([cap_rate, lm_rate], (captioner, lm)) = train_rates(device, steps);
    let ([cap_composed, lm_composed], _) = lstm::composed_only(|| train_rates(device, steps));
    let (captioner, lm) = (captioner.valid(), lm.valid());
    let infer = Tensor::<3>::random([64, K, FEATURES], Distribution::Normal(0.0, 1.0), device);
    let started = Instant::now();
    let _ = greedy(&captioner, infer.clone());
    let greedy_rate = 64.0 / started.elapsed().as_secs_f64();
    let few = infer.narrow(0, 0, 16);
    let started = Instant::now();
    let _ = milan_pmi(&captioner, &lm, few, &DecodeConfig::default());
    let pmi_rate = 16.0 / started.elapsed().as_secs_f64();
    [
        cap_rate,
        lm_rate,
        greedy_rate,
        pmi_rate,
        cap_composed,
        lm_composed,
    ]
}

/// (captioner training steps/s, language model training steps/s) after one untimed step each,
/// and the models trained.
fn train_rates(device: &Device, steps: usize) -> ([f64; 2], (Captioner, LanguageModel)) {
    let config = MilanConfig::default();
    let train = device.clone().autodiff();
    let mut captioner = config.captioner(FEATURES, VOCAB).init(&train);
    let mut lm = config.language_model(VOCAB).init(&train);
    let features = Tensor::<3>::random([64, K, FEATURES], Distribution::Normal(0.0, 1.0), &train);
    let tokens = batch(64);
    let mut opt = AdamWConfig::new().with_weight_decay(0.01).init();
    // Steps per second from the median step time (bench_model.py's `timed` is the same): a step
    // slowed by something else on the machine moves the median less than the mean.
    let timed = |f: &mut dyn FnMut()| {
        f(); // untimed warm-up
        let mut times: Vec<f64> = (0..steps.max(1))
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let mid = times.len() / 2;
        let median = if times.len() % 2 == 1 {
            times[mid]
        } else {
            (times[mid - 1] + times[mid]) / 2.0
        };
        1.0 / median
    };
    let cap_rate = timed(&mut || {
        let loss = captioner.loss(features.clone(), &tokens, 1.0);
        let grads = GradientsParams::from_grads(loss.backward(), &captioner);
        captioner = opt.step(1e-3, captioner.clone(), grads);
    });
    let lm_tokens = batch(128);
    let mut opt = AdamWConfig::new().with_weight_decay(0.01).init();
    let lm_rate = timed(&mut || {
        let loss = lm.loss(&lm_tokens, &train);
        let grads = GradientsParams::from_grads(loss.backward(), &lm);
        lm = opt.step(1e-3, lm.clone(), grads);
    });
    ([cap_rate, lm_rate], (captioner, lm))
}

/// The PyTorch side of the benchmark, written for this project: the same model, dims, hoisting
/// and batch sizes.
const PYTORCH_BENCH: &str = include_str!("bench_model.py");

/// The Python of scripts/install-libtorch's virtualenv.
pub fn default_python() -> Result<PathBuf> {
    let venv = match std::env::var_os("MILAN_TORCH_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set; pass --python")?;
            Path::new(&home).join(".cache/milan-rs/torch-2.9.0")
        }
    };
    let python = venv.join("bin/python");
    if !python.is_file() {
        bail!(
            "--vs-pytorch needs PyTorch: {} does not exist; install it with scripts/install-libtorch \
             (or pass --python with a Python that has torch)",
            python.display()
        );
    }
    Ok(python)
}

/// What a PyTorch benchmark script prints last: torch's version, its threads and the rates.
#[derive(serde::Deserialize)]
pub struct PyTorchRates<R> {
    pub torch: String,
    pub threads: usize,
    pub rates: R,
}

/// Runs a PyTorch benchmark `script` (fed on standard input) with `python` and `args`, and parses
/// the JSON object it prints last. `hint` follows the message of a failure.
pub fn run_pytorch<R: serde::de::DeserializeOwned>(
    python: &Path,
    script: &str,
    args: &[String],
    hint: &str,
) -> Result<PyTorchRates<R>> {
    let mut child = Command::new(python)
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Shown only on failure: torch warns at import when numpy is absent, which nothing here
        // needs.
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "the PyTorch benchmark ({}) failed: {}\n{}{hint}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .with_context(|| format!("the PyTorch benchmark printed {last:?}, not its JSON"))
}

/// Runs `bench_model.py` with `python`: (torch's version, its threads, the four rates).
fn pytorch(python: &Path, steps: usize, threads: usize) -> Result<PyTorchRates<[f64; 4]>> {
    let args = [
        "--steps",
        &steps.to_string(),
        "--threads",
        &threads.to_string(),
    ]
    .map(str::to_owned);
    run_pytorch(python, PYTORCH_BENCH, &args, "")
}

pub fn run(steps: usize, python: Option<&Path>) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut backends: Vec<(&str, Device)> = vec![("flex (CPU)", Device::flex())];
    if cfg!(feature = "tch") {
        backends.push((
            "libtorch (CPU)",
            milan_trainer::util::backend::device("tch")?,
        ));
    }
    println!(
        "MILAN at the reference dims: {FEATURES}-dim features x {K}, hidden 512, vocabulary {VOCAB}; \
         {steps} timed steps; {threads} threads"
    );
    let labels = [
        "captioner train step, batch 64 ",
        "LM train step, batch 128       ",
        "greedy decoding, 64 neurons    ",
        "beam 50 + PMI, 16 neurons      ",
        "  the same, Tensor-API LSTM     ",
        "  the same, Tensor-API LSTM     ",
    ];
    let units = ["steps/s", "steps/s", "neurons/s", "neurons/s"];
    let mut base: Option<([f64; 4], &str)> = None;
    if let Some(python) = python {
        let torch = pytorch(python, steps, threads)?;
        println!("PyTorch {} (CPU, {} threads)", torch.torch, torch.threads);
        for i in 0..4 {
            println!("  {} {:9.2} {:<9}", labels[i], torch.rates[i], units[i]);
        }
        base = Some((torch.rates, "PyTorch"));
    }
    for (name, device) in backends {
        let r = measure(&device, steps);
        let (base, against) = *base.get_or_insert(([r[0], r[1], r[2], r[3]], "flex"));
        println!("{name}");
        // The Tensor-API rows follow the training row they repeat, with both ratios.
        for (i, composed) in [(0, Some(4)), (1, Some(5)), (2, None), (3, None)] {
            println!(
                "  {} {:9.2} {:<9}  {:.2}x {against}",
                labels[i],
                r[i],
                units[i],
                r[i] / base[i]
            );
            if let Some(j) = composed {
                println!(
                    "  {} {:9.2} {:<9}  {:.2}x {against}; the custom backward {:.2}x this",
                    labels[j],
                    r[j],
                    units[i],
                    r[j] / base[i],
                    r[i] / r[j]
                );
            }
        }
    }
    Ok(())
}
