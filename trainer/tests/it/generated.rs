//! A generator's exemplars (`trainer exemplars --model GEN.onnx --latents ...`) against PyTorch: a
//! small class-conditional generator (a class embedding, transposed convolutions, batch norms,
//! tanh) exported by PyTorch 2.9.0 with 200 latents and what PyTorch computes for them
//! (`scripts/onnx/export_models.py`). Our maps and images equal PyTorch's within 1e-4, every
//! unit's 15 exemplar latents are PyTorch's top 15, the stored images are PyTorch's images, and
//! the masks equal the ones PyTorch's maps give on at least 99% of pixels.
//!
//! Needs the exports: `scripts/export-onnx` (scripts/test runs it before the tests).

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use milan_networks::generator::{Latent, OnnxGenerator};
use milan_shared::milannotations::Dataset;
use milan_trainer::probing::exemplars::upsample_align_corners;
use milan_trainer::probing::generated::read_latent;

fn file(name: &str) -> PathBuf {
    common::onnx_exports().join(name)
}

fn maps(name: &str) -> ndarray::Array4<f32> {
    ndarray_npy::read_npy(file(&format!("gen-tiny.{name}.npy"))).unwrap()
}

/// The node of the exported graph that is module `act`'s output (`/act1/Relu`).
fn node(generator: &OnnxGenerator, act: &str) -> String {
    generator
        .layers()
        .into_iter()
        .find(|l| l.starts_with(&format!("/{act}/")))
        .unwrap_or_else(|| panic!("no node of {act} among {:?}", generator.layers()))
}

/// numpy's default (linear) quantile.
fn quantile(mut values: Vec<f32>, q: f64) -> f32 {
    values.sort_by(f32::total_cmp);
    let rank = q * (values.len() - 1) as f64;
    let (lo, frac) = (rank.floor() as usize, rank - rank.floor());
    let hi = (lo + 1).min(values.len() - 1);
    (f64::from(values[lo]) + frac * (f64::from(values[hi]) - f64::from(values[lo]))) as f32
}

#[test]
fn a_generators_exemplars_are_pytorchs() {
    let path = file("gen-tiny.onnx");
    assert!(
        path.is_file(),
        "{} missing: run scripts/export-onnx (scripts/test does)",
        path.display()
    );
    let generator = OnnxGenerator::load(&path, None, (-1.0, 1.0)).unwrap();
    assert_eq!(generator.image().1, 32);
    let names: Vec<&str> = generator.inputs().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["z", "y"]);
    let latents = [
        read_latent(&file("gen-tiny.z.npy")).unwrap(),
        read_latent(&file("gen-tiny.y.npy")).unwrap(),
    ];
    assert!(matches!(latents[1], Latent::Ids(_)));
    let layers = vec![node(&generator, "act1"), node(&generator, "act2")];

    // Maps and images, batch by batch, against PyTorch's.
    let torch_images: ndarray::Array4<f32> = maps("images");
    let torch_maps = [maps("act1"), maps("act2")];
    for first in (0..200).step_by(50) {
        let (acts, images) = generator.run(&latents, first, 50, &layers).unwrap();
        for (act, torch) in acts.iter().zip(&torch_maps) {
            let want = torch.slice(ndarray::s![first..first + 50, .., .., ..]);
            let worst = act
                .values
                .iter()
                .zip(want.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "maps differ by {worst}");
        }
        let want = torch_images.slice(ndarray::s![first..first + 50, .., .., ..]);
        let worst = images
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (a / 255.0 * 2.0 - 1.0 - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "images differ by {worst}");
    }

    // `trainer layers` lists a generator's inputs, image output and nodes.
    let listed = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["layers", "--model"])
        .arg(&path)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("a generator. Inputs: z (float rows of 16), y (integer ids). Image output: /Tanh (32x32)")
            && listed.contains(&layers[0]),
        "{listed}"
    );

    // `trainer bench --onnx GEN --latents`: latents/s at each batch size and of a whole run.
    let bench = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["bench", "--onnx"])
        .arg(&path)
        .arg("--latents")
        .arg(file("gen-tiny.z.npy"))
        .arg("--inputs")
        .arg(format!("y={}", file("gen-tiny.y.npy").display()))
        .args(["--layers", &layers[1], "--images", "20", "--batches", "1,4"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&bench.stdout).into_owned();
    assert!(
        bench.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    assert_eq!(printed.matches(" latents/s ").count(), 3, "{printed}");
    assert!(printed.contains("peak memory"), "{printed}");

    // The command: exemplars over the latents, class ids as the second input.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["exemplars", "--model"])
        .arg(&path)
        .arg("--latents")
        .arg(file("gen-tiny.z.npy"))
        .arg("--inputs")
        .arg(format!("y={}", file("gen-tiny.y.npy").display()))
        .args([
            "--layers",
            &layers.join(","),
            "--key",
            "gen-tiny/latents",
            "--batch",
            "32",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{said}");
    assert!(said.contains("200 latents"), "{said}");
    let dataset = Dataset::open(&out.join("gen-tiny/latents")).unwrap();
    assert!(out.join("gen-tiny/latents/latents.json").is_file());
    let (mut same, mut pixels) = (0usize, 0usize);
    for (layer, torch) in dataset.layers().iter().zip(&torch_maps) {
        let (n, units, h, w) = torch.dim();
        assert_eq!(layer.units(), units);
        assert_eq!(
            (layer.shape().height, layer.shape().width, layer.shape().k),
            (32, 32, 15)
        );
        for u in 0..units {
            // PyTorch's top 15 latents by the map's maximum.
            let peaks: Vec<f32> = (0..n)
                .map(|i| {
                    torch
                        .slice(ndarray::s![i, u, .., ..])
                        .iter()
                        .copied()
                        .fold(f32::MIN, f32::max)
                })
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| peaks[b].total_cmp(&peaks[a]));
            let ex = layer.exemplars(u);
            let ids: Vec<usize> = ex.ids.iter().map(|&i| i as usize).collect();
            assert_eq!(ids, order[..15], "{} unit {u}", layer.name());
            let threshold = quantile(
                torch
                    .slice(ndarray::s![.., u, .., ..])
                    .iter()
                    .copied()
                    .collect(),
                0.99,
            );
            let images = ex.images.expect("generated images are stored");
            for (j, &id) in ids.iter().enumerate() {
                // The stored image is PyTorch's, to the nearest level.
                for c in 0..3 {
                    for y in 0..32 {
                        for x in 0..32 {
                            let want = ((torch_images[[id, c, y, x]] + 1.0) * 127.5).round();
                            let got = f32::from(images[[j, c, y, x]]);
                            assert!((got - want).abs() <= 1.0, "image {id} at {c},{y},{x}");
                        }
                    }
                }
                let map: Vec<f32> = torch
                    .slice(ndarray::s![id, u, .., ..])
                    .iter()
                    .copied()
                    .collect();
                let up = upsample_align_corners(&map, h, w, 32);
                for (p, v) in up.iter().enumerate() {
                    same +=
                        usize::from(u8::from(*v > threshold) == ex.masks[[j, 0, p / 32, p % 32]]);
                    pixels += 1;
                }
            }
        }
    }
    // The folder is ordinary MILANNOTATIONS: the catalog takes it as it is.
    let site = tmp.path().join("site");
    let catalog = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["catalog", "--data"])
        .arg(out.join("gen-tiny/latents"))
        .arg("--out")
        .arg(&site)
        .output()
        .unwrap();
    assert!(
        catalog.status.success(),
        "{}",
        String::from_utf8_lossy(&catalog.stderr)
    );
    assert!(site.join("gen-tiny-latents/act2.Relu/7.html").is_file());

    let agree = same as f64 / pixels as f64;
    assert!(agree >= 0.99, "masks agree on {:.4} of pixels", agree);
    println!(
        "masks agree with PyTorch's on {:.5} of {pixels} pixels",
        agree
    );
}
