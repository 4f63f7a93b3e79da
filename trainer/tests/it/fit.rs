//! `trainer fit` and `trainer describe` end to end on a small synthetic corpus, with real
//! EfficientNet-Lite0 features and BERTScore (assets fetched by scripts/test).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn trainer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.env("MILAN_ASSETS", root().join("assets"));
    c
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A model scripts/export-onnx wrote, or a failure that says how to make it.
fn onnx_model(name: &str) -> PathBuf {
    let path = root().join("assets/onnx").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/export-onnx from the repository root (scripts/test does)",
        path.display()
    );
    path
}

fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(!out.status.success(), "{cmd:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    r.records().map(|x| x.expect("a CSV row")).collect()
}

fn csv_header(path: &Path) -> Vec<String> {
    let mut r = csv::Reader::from_path(path).expect("csv");
    r.headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect()
}

/// A synthetic corpus of `keys` with `units` units per layer in `dir/synth`, and a small
/// configuration (`epochs` of training, a narrow model, beam 2) in `dir/small.json`.
fn small_corpus(dir: &Path, units: &str, keys: &str, epochs: usize) -> (PathBuf, PathBuf) {
    let data = dir.join("synth");
    run(trainer().args(["synth", "--out"]).arg(&data).args([
        "--units-per-layer",
        units,
        "--keys",
        keys,
    ]));
    let config = dir.join("small.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"hidden": 16, "lm_hidden": 16, "embedding": 8, "lm_embedding": 8,
                "max_epochs": {epochs}, "lm_max_epochs": {epochs},
                "decode": {{"beam": 2, "lambda": 0.2, "neurons_per_batch": 8}}}}"#
        ),
    )
    .expect("config");
    (data, config)
}

#[test]
fn fit_writes_every_result_and_describe_uses_the_checkpoint() {
    common::assets_present();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("synth");
    run(trainer().args(["synth", "--out"]).arg(&data).args([
        "--units-per-layer",
        "4",
        "--keys",
        "alexnet/imagenet,resnet152/imagenet",
    ]));
    let config = tmp.path().join("small.json");
    std::fs::write(
        &config,
        r#"{"hidden": 32, "lm_hidden": 32, "embedding": 16, "lm_embedding": 16, "max_epochs": 3,
            "lm_max_epochs": 3, "decode": {"beam": 4, "lambda": 0.2, "neurons_per_batch": 8}}"#,
    )
    .expect("config");
    let out = tmp.path().join("run");
    let cache = tmp.path().join("cache");
    let fit = run(trainer()
        .args([
            "fit",
            "--split",
            "across-arch",
            "--direction",
            "alexnet->resnet152",
            "--trials",
            "2",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&config)
        .arg("--cache")
        .arg(&cache)
        .args(["--encoder", "efficientnet-lite0"]));
    let stdout = String::from_utf8_lossy(&fit.stdout);
    assert!(stdout.contains("| alexnet->resnet152 |"), "{stdout}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["split"], "across-arch");
    let experiments = summary["experiments"].as_array().expect("experiments");
    assert_eq!(experiments.len(), 1);
    let e = &experiments[0];
    assert_eq!(e["name"], "alexnet->resnet152");
    assert_eq!(
        e["train"],
        serde_json::json!(["alexnet/imagenet", "alexnet/places365"])
    );
    assert_eq!(
        e["test"],
        serde_json::json!(["resnet152/imagenet", "resnet152/places365"])
    );
    for system in [
        "milan-pmi",
        "captioner-beam",
        "captioner-greedy",
        "nearest-neighbour",
        "annotators",
    ] {
        for metric in ["bleu", "bertscore_f"] {
            let m = &e["results"][system][metric];
            let mean = m["mean"]
                .as_f64()
                .unwrap_or_else(|| panic!("{system} {metric}: {e}"));
            assert!(m["std"].as_f64().expect("std") >= 0.0);
            assert!(
                mean.is_finite() && (-1.0..=100.0).contains(&mean),
                "{system} {metric} {mean}"
            );
        }
    }
    // The annotators agree with each other more than chance: a real signal in the corpus.
    assert!(
        e["results"]["annotators"]["bleu"]["mean"]
            .as_f64()
            .expect("bleu")
            > 5.0
    );
    let md = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    assert!(
        md.contains("| alexnet->resnet152 |")
            && md.contains("| milan-pmi |")
            && md.contains("annotators (leave one out)"),
        "{md}"
    );

    let exp = out.join("alexnet-to-resnet152");
    let header = csv_header(&exp.join("predictions.csv"));
    assert_eq!(
        header,
        [
            "trial",
            "model",
            "layer",
            "unit",
            "prediction",
            "captioner_beam",
            "captioner_greedy",
            "nearest_neighbour",
            "netdissect",
            "compexp",
            "reference_1",
            "reference_2",
            "reference_3"
        ]
    );
    let rows = csv_rows(&exp.join("predictions.csv"));
    assert_eq!(
        rows.len(),
        2 * 20,
        "every resnet152/imagenet unit, both trials"
    );
    assert!(rows.iter().all(|r| &r[1] == "resnet152/imagenet"
        && r[8].is_empty()
        && r[9].is_empty()
        && !r[10].is_empty()));
    for trial in ["trial-0", "trial-1"] {
        for file in [
            "config.json",
            "vocab.json",
            "captioner.bpk",
            "lm.bpk",
            "history.json",
            "learning-curve.png",
            "predictions.csv",
            "metrics.json",
        ] {
            assert!(exp.join(trial).join(file).is_file(), "{trial}/{file}");
        }
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp.join("metrics.json")).expect("metrics"))
            .expect("json");
    assert_eq!(metrics["trials"].as_array().expect("trials").len(), 2);

    // describe: every unit of the network, with the best trial's weights.
    let described = tmp.path().join("described.csv");
    run(trainer()
        .arg("describe")
        .arg("--checkpoint")
        .arg(&exp)
        .arg("--data")
        .arg(data.join("resnet152/imagenet"))
        .arg("--out")
        .arg(&described)
        .arg("--cache")
        .arg(&cache));
    assert_eq!(csv_header(&described), ["layer", "unit", "description"]);
    let rows = csv_rows(&described);
    assert_eq!(rows.len(), 20);
    assert_eq!(&rows[0][0], "conv1");
    assert_eq!(&rows[0][1], "0");
    // Greedy from one trial folder, to standard output.
    let greedy = run(trainer()
        .arg("describe")
        .arg("--checkpoint")
        .arg(exp.join("trial-1"))
        .arg("--data")
        .arg(data.join("alexnet/imagenet"))
        .arg("--greedy")
        .arg("--cache")
        .arg(&cache));
    assert_eq!(String::from_utf8_lossy(&greedy.stdout).lines().count(), 21);
    let said = String::from_utf8_lossy(&greedy.stderr);
    assert!(
        said.contains("decoded 20 units in ") && said.contains(" neurons/s (greedy, "),
        "{said}"
    );

    // describe --model: from an ONNX network and a folder of photos to descriptions in one
    // command; the exemplars are cached, so a second run reuses them.
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).expect("mkdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/efficientnet-lite0");
    for entry in std::fs::read_dir(&fixtures).expect("fixtures") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|x| x == "png") {
            // Each photo and its mirror image: 20, enough for 15 exemplars.
            let img = image::open(&p).expect("photo");
            let name = p.file_stem().expect("name").to_string_lossy().into_owned();
            img.save(photos.join(format!("{name}.png"))).expect("save");
            img.fliph()
                .save(photos.join(format!("{name}-mirrored.png")))
                .expect("save");
        }
    }
    let from_onnx = tmp.path().join("onnx.csv");
    let site = tmp.path().join("site");
    let describe_onnx = || {
        let mut cmd = trainer();
        cmd.arg("describe")
            .arg("--checkpoint")
            .arg(&exp)
            .arg("--model")
            .arg(onnx_model("tiny-cnn.onnx"))
            .args(["--layers", "conv1,conv2", "--greedy"])
            .arg("--images")
            .arg(&photos)
            .arg("--out")
            .arg(&from_onnx)
            .arg("--catalog")
            .arg(&site)
            .arg("--cache")
            .arg(&cache);
        cmd
    };
    let first = run(&mut describe_onnx());
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("exemplars of 10 units over 20 images"),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let rows = csv_rows(&from_onnx);
    assert_eq!(rows.len(), 10);
    // A generator too: its exemplars drawn over a latent dataset, then described.
    let from_generator = tmp.path().join("generator.csv");
    run(trainer()
        .arg("describe")
        .arg("--checkpoint")
        .arg(&exp)
        .arg("--model")
        .arg(onnx_model("gen-tiny.onnx"))
        .args(["--layers", "/act2/Relu", "--greedy"])
        .arg("--latents")
        .arg(onnx_model("gen-tiny.z.npy"))
        .arg("--inputs")
        .arg(format!("y={}", onnx_model("gen-tiny.y.npy").display()))
        .arg("--out")
        .arg(&from_generator)
        .arg("--cache")
        .arg(&cache));
    let generated = csv_rows(&from_generator);
    assert_eq!(generated.len(), 8, "the 8 units of /act2/Relu");
    assert!(generated.iter().all(|r| !r[2].is_empty()));
    // ... and a catalog of them in the same step: a unit page with its exemplars and the run's
    // description.
    let index = std::fs::read_to_string(site.join("index.html")).expect("a catalog");
    assert!(index.contains("10 units of 1 model"), "{index}");
    let unit_page = walk(&site)
        .into_iter()
        .find(|p| p.ends_with(format!("{}/{}.html", &rows[0][0], &rows[0][1])))
        .expect("the first unit's page");
    let unit_html = std::fs::read_to_string(&unit_page).expect("page");
    assert!(
        unit_html.contains(&format!(
            "MILAN (alexnet-to-resnet152)</span></td><td>{}</td>",
            milan_catalog::pages::escape(&rows[0][2])
        )),
        "{unit_html}"
    );
    assert_eq!(
        unit_html
            .matches(&format!("img/{}-full.jpg", &rows[0][1]))
            .count(),
        15
    );
    assert_eq!((&rows[0][0][..], &rows[0][1][..]), ("conv1", "0"));
    assert_eq!((&rows[9][0][..], &rows[9][1][..]), ("conv2", "3"));
    let again = run(&mut describe_onnx());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("reusing the exemplars"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        csv_rows(&from_onnx),
        rows,
        "the same descriptions from the cache"
    );

    // sweep-lambda decodes the trained trials again: at the run's own lambda and at 0 it
    // reproduces fit's milan-pmi and captioner-beam scores, trial by trial.
    let sweep_out = tmp.path().join("sweep");
    let swept = run(trainer()
        .args([
            "sweep-lambda",
            "--split",
            "across-arch",
            "--lambdas",
            "0.2,1",
        ])
        .arg("--run")
        .arg(&out)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&sweep_out)
        .arg("--cache")
        .arg(&cache));
    assert!(
        String::from_utf8_lossy(&swept.stdout).contains("minus beam"),
        "{}",
        String::from_utf8_lossy(&swept.stdout)
    );
    let sweep: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sweep_out.join("sweep.json")).expect("sweep.json"),
    )
    .expect("json");
    let e = &sweep["experiments"][0];
    assert_eq!(e["name"], "alexnet->resnet152");
    assert_eq!(e["trials"], 2);
    let points = e["points"].as_array().expect("points");
    let lambdas: Vec<f64> = points
        .iter()
        .map(|p| p["lambda"].as_f64().expect("lambda"))
        .collect();
    assert_eq!(lambdas, [0.0, 0.2, 1.0]);
    let per_trial = &metrics["trials"];
    let mean_of = |system: &str| -> f64 {
        (0..2)
            .map(|t| per_trial[t][system]["bertscore_f"].as_f64().expect("score"))
            .sum::<f64>()
            / 2.0
    };
    for (at, system) in [(0, "captioner-beam"), (1, "milan-pmi")] {
        let swept = points[at]["bertscore_f"]["mean"].as_f64().expect("mean");
        assert!(
            (swept - mean_of(system)).abs() < 1e-4,
            "lambda {}: {swept} against fit's {system} {}",
            lambdas[at],
            mean_of(system)
        );
    }
    assert!(
        (e["greedy"]["mean"].as_f64().expect("greedy") - mean_of("captioner-greedy")).abs() < 1e-4
    );
    // Plain beam minus itself is nothing; the reranking changes no neuron at lambda 0.
    assert_eq!(points[0]["minus_beam"], serde_json::json!([0.0, 0.0, 0.0]));
    assert_eq!(points[0]["changed"], 0.0);
    assert_eq!(
        csv_header(&sweep_out.join("predictions.csv")),
        [
            "experiment",
            "trial",
            "model",
            "layer",
            "unit",
            "greedy",
            "lambda=0",
            "lambda=0.2",
            "lambda=1"
        ]
    );
    assert_eq!(csv_rows(&sweep_out.join("predictions.csv")).len(), 2 * 20);
    // A run of another split has no trials to sweep, and says so.
    let err = fails(
        trainer()
            .args(["sweep-lambda", "--split", "within-network"])
            .arg("--run")
            .arg(&out)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("y"))
            .arg("--cache")
            .arg(&cache),
    );
    assert!(err.contains("no trained trial"), "{err}");

    // Mistakes are named.
    let err = fails(
        trainer()
            .args([
                "fit",
                "--split",
                "across-arch",
                "--direction",
                "alexnet->vgg",
            ])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("x"))
            .arg("--cache")
            .arg(tmp.path().join("no-cache")),
    );
    assert!(
        err.contains("alexnet->resnet152"),
        "lists the known experiments: {err}"
    );
    assert!(
        !tmp.path().join("no-cache").exists(),
        "no features are computed for a misspelt experiment"
    );
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"hiden": 3}"#).expect("write");
    let err = fails(
        trainer()
            .args(["fit", "--split", "across-arch"])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("x"))
            .arg("--config")
            .arg(&bad),
    );
    assert!(err.contains("unknown field \"hiden\""), "{err}");
    let err = fails(
        trainer()
            .args(["describe", "--checkpoint"])
            .arg(tmp.path())
            .arg("--data")
            .arg(data.join("alexnet/imagenet")),
    );
    assert!(err.contains("no trained run here"), "{err}");
}

#[test]
fn experiments_without_data_are_skipped_and_named() {
    common::assets_present();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, config) = small_corpus(tmp.path(), "3", "alexnet/imagenet", 1);
    let out = tmp.path().join("run");
    run(trainer()
        .args(["fit", "--split", "within-network", "--trials", "1"])
        .args(["--encoder", "efficientnet-lite0"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&config)
        .arg("--cache")
        .arg(tmp.path().join("cache")));
    let md = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    assert!(md.contains("| alexnet/imagenet |"), "{md}");
    assert!(
        md.contains("Not run (no data for their keys): alexnet/places365"),
        "{md}"
    );
    let err = fails(
        trainer()
            .args(["fit", "--split", "across-dataset", "--trials", "1"])
            .args(["--encoder", "efficientnet-lite0"])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("y"))
            .arg("--config")
            .arg(&config)
            .arg("--cache")
            .arg(tmp.path().join("cache")),
    );
    assert!(
        err.contains("no experiment of across-dataset has data here"),
        "{err}"
    );
}

/// Every `"protocol"` field removed: a run as the trainer wrote it before the reference's
/// protocol.
fn strip_protocol(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("protocol");
            map.values_mut().for_each(strip_protocol);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_protocol),
        _ => {}
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The (model, layer, unit) rows of a unit list or a trial's predictions, sorted.
fn units(path: &Path) -> Vec<(String, String, String)> {
    let mut u: Vec<_> = csv_rows(path)
        .iter()
        .map(|r| (r[0].to_owned(), r[1].to_owned(), r[2].to_owned()))
        .collect();
    u.sort();
    u
}

/// Each experiment's BERTScore, BLEU and ROUGE-L per system, from a summary.
fn figures(summary: &serde_json::Value) -> Vec<(String, String, f64, f64, f64)> {
    let mut out = Vec::new();
    for e in summary["experiments"].as_array().unwrap() {
        for (system, r) in e["results"].as_object().unwrap() {
            out.push((
                e["name"].as_str().unwrap().to_owned(),
                system.clone(),
                r["bertscore_f"]["mean"].as_f64().unwrap(),
                r["bleu"]["mean"].as_f64().unwrap(),
                r["rouge_l"]["mean"].as_f64().unwrap(),
            ));
        }
    }
    out
}

#[test]
fn test_units_are_kept_runs_rescore_and_the_report_has_the_papers_shape() {
    common::assets_present();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, config) = small_corpus(tmp.path(), "4", "alexnet/imagenet,resnet152/imagenet", 1);
    let cache = tmp.path().join("cache");
    let fit = |split: &str, out: &Path, extra: &[&str]| {
        let mut c = trainer();
        c.args(["fit", "--split", split])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out)
            .arg("--config")
            .arg(&config)
            .arg("--cache")
            .arg(&cache)
            .args(extra);
        c
    };

    // The paper's model keys get the reference's encoder (ResNet-50) unless told otherwise;
    // without its weights that is an error saying what to do, before anything is computed.
    let err = fails(&mut fit("within-network", &tmp.path().join("x"), &[]));
    assert!(
        err.contains("resnet50")
            && err.contains("generalization.py")
            && err.contains("--encoder efficientnet-lite0"),
        "{err}"
    );
    assert!(!cache.exists(), "no features computed");

    // Within a network the test units are drawn once and kept for every trial.
    let within = tmp.path().join("within");
    let lite0 = ["--encoder", "efficientnet-lite0"];
    let out = run(&mut fit(
        "within-network",
        &within,
        &[&lite0[..], &["--trials", "2"]].concat(),
    ));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("WARNING: roberta-large is not fetched"),
        "MiniLM is said loudly: {said}"
    );
    for exp in ["alexnet_imagenet", "resnet152_imagenet"] {
        let kept = units(&within.join(exp).join("test-units.csv"));
        assert_eq!(kept.len(), 2, "10% of 20 units");
        for trial in ["trial-0", "trial-1"] {
            let rows = csv_rows(&within.join(exp).join(trial).join("predictions.csv"));
            let mut tested: Vec<_> = rows
                .iter()
                .map(|r| (r[0].to_owned(), r[1].to_owned(), r[2].to_owned()))
                .collect();
            tested.sort();
            assert_eq!(tested, kept, "{exp} {trial}");
        }
    }
    let summary = json(&within.join("summary.json"));
    assert_eq!(summary["protocol"], "all-references");
    assert_eq!(summary["bertscore_is_papers"], false);
    // --num-layers reaches the scorer (issue 40): the same test units, the annotators' figure
    // (which no training touches) scored with two of MiniLM's six layers, is another figure, and
    // the setting says so. follow.rs checks `follow` and `simulate-active` the same way.
    let two = tmp.path().join("within-2-layers");
    run(&mut fit(
        "within-network",
        &two,
        &[&lite0[..], &["--trials", "1", "--num-layers", "2"]].concat(),
    ));
    let annotators = |s: &serde_json::Value| {
        s["experiments"][0]["results"]["annotators"]["bertscore_f"]["mean"]
            .as_f64()
            .expect("annotators' BERTScore")
    };
    let layered = json(&two.join("summary.json"));
    assert!(
        layered["bertscore"].as_str().unwrap().contains("layer 2,")
            && summary["bertscore"].as_str().unwrap().contains("layer 6,"),
        "{} / {}",
        layered["bertscore"],
        summary["bertscore"]
    );
    assert_eq!(
        units(&two.join("alexnet_imagenet/test-units.csv")),
        units(&within.join("alexnet_imagenet/test-units.csv"))
    );
    assert_ne!(annotators(&layered), annotators(&summary));
    let results = &summary["experiments"][0]["results"];
    assert_eq!(results["milan-pmi"]["protocol"], "all-references");
    assert_eq!(results["annotators"]["protocol"], "leave-one-annotator-out");
    assert!(results["milan-pmi"]["rouge_l"]["mean"].as_f64().is_some());
    let trial = json(&within.join("alexnet_imagenet/trial-0/metrics.json"));
    assert!(
        trial["results"]["milan-pmi"]["rouge"]["rouge-2"]["f"]
            .as_f64()
            .is_some(),
        "{trial}"
    );
    let md = std::fs::read_to_string(within.join("summary.md")).unwrap();
    assert!(
        md.contains("not the paper's") && md.contains("drawn once with seed 0"),
        "{md}"
    );

    // Another seed draws other units; --splits-from keeps the first run's.
    let reseeded = tmp.path().join("reseeded");
    let one = [
        &lite0[..],
        &[
            "--trials",
            "1",
            "--seed",
            "5",
            "--direction",
            "alexnet/imagenet",
        ],
    ]
    .concat();
    run(&mut fit("within-network", &reseeded, &one));
    let kept = units(&within.join("alexnet_imagenet/test-units.csv"));
    assert_ne!(
        units(&reseeded.join("alexnet_imagenet/test-units.csv")),
        kept
    );
    let paired = tmp.path().join("paired");
    let from = [&one[..], &["--splits-from", within.to_str().unwrap()]].concat();
    run(&mut fit("within-network", &paired, &from));
    assert_eq!(units(&paired.join("alexnet_imagenet/test-units.csv")), kept);
    let err = fails(&mut fit(
        "across-arch",
        &tmp.path().join("y"),
        &[&lite0[..], &["--splits-from", within.to_str().unwrap()]].concat(),
    ));
    assert!(
        err.contains("no alexnet-to-resnet152/test-units.csv"),
        "{err}"
    );

    // Across architectures: every unit of the test network; compare-splits pairs the
    // within-network test units with the same units tested across.
    let across = tmp.path().join("across");
    run(&mut fit(
        "across-arch",
        &across,
        &[
            &lite0[..],
            &["--trials", "1", "--direction", "alexnet->resnet152"],
        ]
        .concat(),
    ));
    let compared = run(trainer()
        .arg("compare-splits")
        .arg("--run")
        .arg(format!("within={}", within.display()))
        .arg("--run")
        .arg(format!("across={}", across.display())));
    let stdout = String::from_utf8_lossy(&compared.stdout);
    assert!(
        stdout.contains("Paired on the units both columns tested")
            && stdout.contains("| resnet152/imagenet | across minus within:"),
        "{stdout}"
    );
    // ROUGE-L too, per unit: the mean over a unit's pairs.
    let compared = run(trainer()
        .args(["compare-splits", "--metric", "rouge-l", "--run"])
        .arg(format!("within={}", within.display()))
        .arg("--run")
        .arg(format!("across={}", across.display())));
    let stdout = String::from_utf8_lossy(&compared.stdout);
    assert!(
        stdout.contains("milan-pmi ROUGE-L F on each test network"),
        "{stdout}"
    );

    // The report: the paper's shape, its figure beside ours.
    let report = tmp.path().join("report");
    run(trainer()
        .arg("report")
        .arg(&within)
        .arg(&across)
        .arg("--out")
        .arg(&report));
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("| within-network | alexnet/imagenet | 2 |")
            && md.contains("| across-arch | alexnet->resnet152 | 1 |")
            && md.contains(" 0.28 |")
            && md.contains(" 0.39 |")
            && md.contains("not the paper's"),
        "{md}"
    );
    let rows = csv_rows(&report.join("report.csv"));
    let pmi = rows
        .iter()
        .find(|r| &r[1] == "alexnet->resnet152" && &r[2] == "milan-pmi")
        .expect("a milan-pmi row");
    assert_eq!((&pmi[3], &pmi[14]), ("all-references", "0.280000"));
    assert!(
        rows.iter()
            .any(|r| &r[2] == "annotators" && &r[3] == "leave-one-annotator-out")
    );

    // Rescoring a run from its predictions gives the figures fit gave.
    let before = figures(&json(&across.join("summary.json")));
    run(trainer().arg("rescore").arg(&across));
    let again = figures(&json(&across.join("summary.json")));
    assert_eq!(before.len(), again.len());
    for (a, b) in before.iter().zip(&again) {
        assert_eq!((&a.0, &a.1), (&b.0, &b.1));
        for (x, y) in [(a.2, b.2), (a.3, b.3), (a.4, b.4)] {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    // A run of the old protocol is refused by the readers that compare runs, and rescored.
    for file in [
        across.join("summary.json"),
        across.join("alexnet-to-resnet152/metrics.json"),
        across.join("alexnet-to-resnet152/trial-0/metrics.json"),
    ] {
        let mut v = json(&file);
        strip_protocol(&mut v);
        std::fs::write(&file, v.to_string()).unwrap();
    }
    let err = fails(
        trainer()
            .arg("report")
            .arg(&across)
            .arg("--out")
            .arg(&report),
    );
    assert!(
        err.contains(&format!("trainer rescore {}", across.display())),
        "{err}"
    );
    let err = fails(
        trainer()
            .arg("compare-splits")
            .arg("--run")
            .arg(format!("across={}", across.display())),
    );
    assert!(err.contains("trainer rescore"), "{err}");
    run(trainer().arg("rescore").arg(&across));
    assert!(across.join("summary.two-reference-rounds.json").is_file());
    assert!(
        across
            .join("alexnet-to-resnet152/trial-0/metrics.two-reference-rounds.json")
            .is_file()
    );
    run(trainer()
        .arg("report")
        .arg(&across)
        .arg("--out")
        .arg(&report));

    // Labels of a baseline computed elsewhere: rendered as the reference renders CompExp's, in
    // the predictions and the figures.
    let labels = tmp.path().join("compexp.csv");
    let test_units = units(&across.join("alexnet-to-resnet152/test-units.csv"));
    let mut text = String::from("model,layer,unit,label\n");
    for (m, l, u) in &test_units {
        text.push_str(&format!(
            "{m},{l},{u},\"(Dog-o OR cat-s) AND NOT blue-c\"\n"
        ));
    }
    std::fs::write(&labels, &text).unwrap();
    run(trainer()
        .arg("rescore")
        .arg(&across)
        .arg("--baseline-labels")
        .arg(format!("compexp={}", labels.display())));
    let rows = csv_rows(&across.join("alexnet-to-resnet152/trial-0/predictions.csv"));
    assert!(rows.iter().all(|r| &r[8] == "dog o or cat and not blue"));
    let summary = json(&across.join("summary.json"));
    assert!(summary["experiments"][0]["results"]["compexp"]["bertscore_f"]["mean"].is_f64());
    // A unit without a label is named.
    let short: String = text
        .lines()
        .take(text.lines().count() - 1)
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&labels, short + "\n").unwrap();
    let err = fails(
        trainer()
            .arg("rescore")
            .arg(&across)
            .arg("--baseline-labels")
            .arg(format!("compexp={}", labels.display())),
    );
    let (m, l, u) = test_units.last().unwrap();
    assert!(err.contains(&format!("no label for {m}:{l}:{u}")), "{err}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a folder") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
