//! The backends agree: the same tiny training run (same initial weights, same batches, dropout off
//! because each backend has its own random stream) gives the same losses on flex and on libtorch.
//! Without the `tch` feature only flex runs, and the test says how to run the comparison. On
//! libtorch, the LSTM's custom backward passes are also held to the composed recurrences' gradients.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use milan_model::model::{Captioner, CaptionerConfig, LanguageModel, LanguageModelConfig};
use milan_model::vocab::{Padded, pad};

const STEPS: usize = 8;

fn batches() -> Vec<Padded> {
    (0..STEPS)
        .map(|s| {
            let a = [1usize, 4 + s % 3, 5, 6, 2];
            let b = [1usize, 6, 4 + (s + 1) % 3, 2];
            let c = [1usize, 5, 2];
            pad(&[&a[..], &b[..], &c[..]])
        })
        .collect()
}

/// flex's random stream is the process's: tests that draw from it must not interleave.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn models(device: &Device) -> (Captioner, LanguageModel, Tensor<3>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let flex = Device::flex();
    flex.seed(11);
    let captioner = CaptionerConfig::new(12, 9)
        .with_embedding(8)
        .with_hidden(16)
        .with_dropout(0.0)
        .init(&flex);
    let lm = LanguageModelConfig::new(9)
        .with_embedding(8)
        .with_hidden(16)
        .with_dropout(0.0)
        .init(&flex);
    let features = Tensor::<3>::random([3, 5, 12], Distribution::Normal(0.0, 1.0), &flex);
    // The same initial weights on every backend.
    let captioner = CaptionerConfig::new(12, 9)
        .with_embedding(8)
        .with_hidden(16)
        .with_dropout(0.0)
        .init(device)
        .load_record(captioner.into_record());
    let lm = LanguageModelConfig::new(9)
        .with_embedding(8)
        .with_hidden(16)
        .with_dropout(0.0)
        .init(device)
        .load_record(lm.into_record());
    let features = Tensor::from_data(features.into_data(), device);
    (captioner, lm, features)
}

/// Losses of STEPS AdamW steps of the captioner and of the language model.
fn losses(device: &Device) -> Vec<f32> {
    let train = device.clone().autodiff();
    let (mut captioner, mut lm, features) = models(&train);
    let mut out = Vec::new();
    let mut opt = AdamWConfig::new()
        .with_weight_decay(0.01)
        .with_epsilon(1e-8)
        .init();
    for batch in batches() {
        let loss = captioner.loss(features.clone(), &batch, 1.0);
        out.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &captioner);
        captioner = opt.step(1e-2, captioner, grads);
    }
    let mut opt = AdamWConfig::new()
        .with_weight_decay(0.01)
        .with_epsilon(1e-8)
        .init();
    for batch in batches() {
        let loss = lm.loss(&batch, &train);
        out.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &lm);
        lm = opt.step(1e-2, lm, grads);
    }
    out
}

#[test]
fn flex_trains_the_tiny_run() {
    let l = losses(&Device::flex());
    assert!(l.iter().all(|x| x.is_finite()));
    assert!(l[STEPS - 1] < l[0], "the captioner's loss falls: {l:?}");
    assert!(
        l[2 * STEPS - 1] < l[STEPS],
        "the language model's loss falls: {l:?}"
    );
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_gives_the_same_losses_as_flex() {
    let flex = losses(&Device::flex());
    let tch = losses(&milan_trainer::util::backend::device("tch").expect("libtorch"));
    let worst = flex
        .iter()
        .zip(&tch)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "largest loss difference flex vs libtorch over {} steps: {worst:e}",
        flex.len()
    );
    for (i, (a, b)) in flex.iter().zip(&tch).enumerate() {
        assert!(
            (a - b).abs() < 1e-4,
            "step {i}: flex {a} vs libtorch {b}\nflex {flex:?}\ntch {tch:?}"
        );
    }
}

/// The LSTM's custom backward passes (`milan_model::lstm`'s cell step and layer) on libtorch give
/// the gradients of the same recurrences written with the `Tensor` API (flex's are held to the
/// same in the model crate's unit tests).
#[cfg(feature = "tch")]
#[test]
fn libtorch_lstm_step_and_layer_have_the_composed_gradients() {
    use milan_model::lstm;
    // The inputs are drawn from flex's random stream (see `SERIAL`).
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = milan_trainer::util::backend::device("tch")
        .expect("libtorch")
        .autodiff();
    let normal = |dims: [usize; 2]| {
        let t = Tensor::<2>::random(dims, Distribution::Normal(0.0, 3.0), &Device::flex());
        Tensor::<2>::from_data(t.into_data(), &device)
    };
    let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32");
    let same = |name: &str, ours: Vec<f32>, theirs: Vec<f32>| {
        assert_eq!(ours.len(), theirs.len(), "{name}");
        assert!(ours.iter().any(|v| *v != 0.0), "{name}: all zeros");
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                "{name}: {a} against {b}"
            );
        }
    };
    let (b, steps, h) = (3, 4, 5);
    let gates = normal([b, 4 * h]).require_grad();
    let c = normal([b, h]).require_grad();
    let (w_h, w_c) = (normal([b, h]), normal([b, h]));
    let loss = |(h, c_next): (Tensor<2>, Tensor<2>)| {
        (h * w_h.clone()).sum() + (c_next * w_c.clone()).sum()
    };
    let custom = lstm::custom_step(&gates, &c).expect("libtorch autodiff has the custom step");
    let (grads, grads0) = (
        loss(custom).backward(),
        loss(lstm::composed(gates.clone(), c.clone())).backward(),
    );
    for (name, x) in [("step: gates", &gates), ("step: c", &c)] {
        let g = |grads| values(x.grad(grads).expect("a gradient"));
        same(name, g(&grads), g(&grads0));
    }

    let projected = normal([b * steps, 4 * h])
        .reshape([b, steps, 4 * h])
        .require_grad();
    let w_hh = (normal([h, 4 * h]) * 0.25).require_grad();
    let (h0, c0) = (normal([b, h]).require_grad(), normal([b, h]).require_grad());
    let weights = normal([b * steps, h]).reshape([b, steps, h]);
    let custom = lstm::custom_layer(&projected, &w_hh, &h0, &c0)
        .expect("libtorch autodiff has the custom layer");
    let reference = lstm::composed_layer(projected.clone(), w_hh.clone(), h0.clone(), c0.clone());
    same(
        "layer: hidden states",
        values(custom.clone().reshape([b * steps, h])),
        values(reference.clone().reshape([b * steps, h])),
    );
    let (grads, grads0) = (
        (custom * weights.clone()).sum().backward(),
        (reference * weights).sum().backward(),
    );
    let flat = |x: Tensor<3>| x.reshape([b * steps, 4 * h]);
    let g = |grads| flat(projected.grad(grads).expect("a gradient"));
    same("layer: projection", values(g(&grads)), values(g(&grads0)));
    for (name, x) in [
        ("layer: W_hh", &w_hh),
        ("layer: h0", &h0),
        ("layer: c0", &c0),
    ] {
        let g = |grads| values(x.grad(grads).expect("a gradient"));
        same(name, g(&grads), g(&grads0));
    }
}

#[cfg(not(feature = "tch"))]
#[test]
fn libtorch_comparison_needs_the_tch_feature() {
    // Not a skip: this build has one backend, and says so.
    let err = milan_trainer::util::backend::device("tch").expect_err("no libtorch in this build");
    assert!(err.to_string().contains("--features tch"), "{err}");
}

/// `trainer bench --encoders` times MILAN's pyramid features on each backend of the build; in the
/// libtorch build (scripts/test runs it after scripts/install-libtorch) also in PyTorch, so the
/// PyTorch side of the comparison (`bench_encoders.py`) runs here too.
#[test]
fn the_encoder_bench_times_each_backend() {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
    // From the repository root, where `trainer assets fetch` put EfficientNet-Lite0's weights.
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    command.args([
        "bench",
        "--encoders",
        "resnet18,efficientnet-lite0",
        "--images",
        "1",
        "--batch",
        "1",
    ]);
    if cfg!(feature = "tch") {
        command.arg("--vs-pytorch");
    }
    let out = command.output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{printed}{}\n(the libtorch build compares with PyTorch: run scripts/install-libtorch)",
        String::from_utf8_lossy(&out.stderr)
    );
    let (sections, against) = if cfg!(feature = "tch") {
        (
            ["PyTorch", "flex (CPU)", "libtorch (CPU)"].as_slice(),
            "x PyTorch",
        )
    } else {
        (["flex (CPU)"].as_slice(), "1.00x flex")
    };
    for section in sections {
        assert!(printed.contains(section), "no {section} in\n{printed}");
    }
    for encoder in ["resnet18", "efficientnet-lite0"] {
        let rows: Vec<&str> = printed
            .lines()
            .filter(|l| l.trim_start().starts_with(encoder))
            .collect();
        assert_eq!(rows.len(), sections.len(), "{encoder} in\n{printed}");
        // Every backend's row is a ratio to the baseline measured in the same run.
        assert!(
            rows.iter()
                .skip(usize::from(cfg!(feature = "tch")))
                .all(|r| r.contains(against)),
            "{printed}"
        );
    }
}
