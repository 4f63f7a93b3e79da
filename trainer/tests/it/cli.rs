//! The `trainer` binary as a user runs it.

use crate::common;

use std::process::Command;

use milan_shared::milannotations::Dataset;

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

/// Runs a command that must succeed; its stdout (its stderr in the failure).
fn succeeds(cmd: &mut Command) -> String {
    let run = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{cmd:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

#[test]
fn synth_writes_a_readable_corpus_and_prints_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = trainer()
        .args([
            "synth",
            "--units-per-layer",
            "2",
            "--image-size",
            "32",
            "--seed",
            "3",
        ])
        .arg("--out")
        .arg(tmp.path())
        .args(["--preview", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dino_vits8/imagenet"), "{stdout}");
    assert!(
        stdout.contains("7 keys, 88 units, 264 descriptions"),
        "{stdout}"
    );
    assert!(stdout.contains("14 previews"), "{stdout}");
    let dataset = Dataset::open(&tmp.path().join("biggan/places365")).unwrap();
    assert_eq!(dataset.annotated().len(), 12);
    let preview = tmp.path().join("preview/biggan-places365-layer0-0.png");
    assert!(preview.is_file(), "no preview at {}", preview.display());
}

#[test]
fn synth_can_write_chosen_keys_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = trainer()
        .args(["synth", "--units-per-layer", "1", "--image-size", "16"])
        .args(["--keys", "alexnet/imagenet,my_net/photos"])
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tmp.path()
            .join("alexnet/imagenet/annotations.csv")
            .is_file()
    );
    let own = Dataset::open(&tmp.path().join("my_net/photos")).unwrap();
    assert_eq!(
        own.layers().len(),
        5,
        "keys outside the catalog get five layers"
    );
    assert!(!tmp.path().join("resnet152").exists());
}

#[test]
fn bad_arguments_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (vec!["--image-size", "4"], "--image-size 4 is out of range"),
        (vec!["--keys", "alexnet"], "invalid model key \"alexnet\""),
        (vec!["--units-per-layer", "-1"], "unexpected argument '-1'"),
    ] {
        let out = trainer()
            .arg("synth")
            .arg("--out")
            .arg(tmp.path())
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn no_arguments_print_usage() {
    let out = trainer().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Usage: trainer"), "{stderr}");
    assert!(stderr.contains("synth"), "{stderr}");
}

fn write(dir: &std::path::Path, name: &str, lines: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The five-neuron fixture as files: hypotheses, then three reference streams.
fn five_neurons(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    vec![
        write(
            dir,
            "h",
            &[
                "Dog faces.",
                "striped patterns",
                "the tops of buildings",
                "blue sky",
                "red and white objects",
            ],
        ),
        write(
            dir,
            "r1",
            &[
                "the faces of dogs",
                "black and white stripes",
                "roofs of houses",
                "the sky",
                "text on signs",
            ],
        ),
        write(
            dir,
            "r2",
            &["dog snouts", "stripes", "top of buildings", "sky", "words"],
        ),
        write(
            dir,
            "r3",
            &[
                "animal faces",
                "vertical lines",
                "building edges",
                "blue color",
                "letters",
            ],
        ),
    ]
}

/// `trainer score ARGS --hyps H --refs R...` in the repository root; its JSON output.
fn score_json(args: &[&str], files: &[std::path::PathBuf]) -> serde_json::Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = trainer();
    cmd.current_dir(&root)
        .arg("score")
        .args(args)
        .arg("--json")
        .arg("--hyps")
        .arg(&files[0]);
    for r in &files[1..] {
        cmd.arg("--refs").arg(r);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn score_prints_sacrebleus_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let files = five_neurons(tmp.path());
    let v = score_json(&["--metric", "bleu"], &files);
    // sacrebleu 2.6.0 on the same lines after MILAN's normalisation ("Dog faces." -> "dog faces").
    assert!(
        (v["bleu"]["score"].as_f64().unwrap() - 16.515821590069034).abs() < 1e-9,
        "{v}"
    );
    assert_eq!(
        v["bleu"]["signature"],
        "nrefs:3|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    );
    // Without normalisation the capital and full stop change the score.
    let v = score_json(&["--metric", "bleu", "--no-normalize"], &files[..2]);
    assert!((v["bleu"]["score"].as_f64().unwrap() - 16.515821590069034).abs() > 1.0);
}

#[test]
fn score_prints_rouge_as_milan_pairs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let files = five_neurons(tmp.path());
    let v = score_json(&["--metric", "rouge"], &files);
    // PyPI rouge 1.0.1, `get_scores(avg=True, ignore_empty=True)` over each normalised
    // hypothesis paired with each of its three normalised references (src/utils/metrics.py).
    for (variant, r, p, f) in [
        ("rouge-1", 0.2833333333333333, 0.25, 0.25714285456387004),
        (
            "rouge-2",
            0.03333333333333333,
            0.02222222222222222,
            0.02666666634666667,
        ),
        ("rouge-l", 0.2833333333333333, 0.25, 0.25714285456387004),
    ] {
        for (stat, want) in [("r", r), ("p", p), ("f", f)] {
            let got = v["rouge"][variant][stat].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-12,
                "{variant} {stat}: {got} vs {want}"
            );
        }
    }
    assert!(v.get("bleu").is_none() && v.get("bertscore").is_none());
}

#[test]
fn score_all_prints_bleu_and_bertscore_as_the_reference_tools() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root.join("assets/minilm/model.safetensors").is_file(),
        "run `cargo run -p milan-trainer -- assets fetch minilm` in the repository root (scripts/test does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let files = five_neurons(tmp.path());
    let v = score_json(&["--metric", "all", "--idf"], &files);
    assert!((v["bleu"]["score"].as_f64().unwrap() - 16.515821590069034).abs() < 1e-9);
    // bert_score 0.3.13, all-MiniLM-L6-v2, 6 layers, idf on the references.
    assert!(
        (v["bertscore"]["F"].as_f64().unwrap() - 0.6613590121269226).abs() < 1e-4,
        "{v}"
    );
    assert_eq!(v["bertscore"]["F_each"].as_array().unwrap().len(), 5);
    assert!((v["rouge"]["rouge-l"]["f"].as_f64().unwrap() - 0.25714285456387004).abs() < 1e-12);
    // A baseline rescales: (x - b) / (1 - b).
    let baseline = tmp.path().join("baseline.tsv");
    std::fs::write(&baseline, "LAYER,P,R,F\n5,0.1,0.1,0.1\n6,0.5,0.5,0.5\n").unwrap();
    let v = score_json(
        &[
            "--metric",
            "bertscore",
            "--idf",
            "--baseline",
            baseline.to_str().unwrap(),
        ],
        &files,
    );
    let expected = (0.6613590121269226 - 0.5) / 0.5;
    assert!(
        (v["bertscore"]["F"].as_f64().unwrap() - expected).abs() < 1e-4,
        "{v}"
    );
}

#[test]
fn score_refuses_bad_files_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let hyps = write(tmp.path(), "h", &["a b", "c d"]);
    let short = write(tmp.path(), "short", &["a b"]);
    let blank = write(tmp.path(), "blank", &["a b", "  "]);
    let bad_utf8 = tmp.path().join("bad");
    std::fs::write(&bad_utf8, b"ok line\n\xff\xfe\n").unwrap();
    let missing = tmp.path().join("missing");
    for (refs, metric, expected) in [
        (&short, "bleu", "has 1 lines but"),
        (&blank, "bleu", "blank:2: empty line"),
        (&bad_utf8, "bleu", "bad:2: not valid UTF-8"),
        (&missing, "bleu", "reading reference"),
        (&hyps, "bertscore", "no BERTScore model at /nonexistent"),
    ] {
        let out = trainer()
            .args([
                "score",
                "--bertscore-model",
                "/nonexistent",
                "--metric",
                metric,
                "--hyps",
            ])
            .arg(&hyps)
            .arg("--refs")
            .arg(refs)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{expected}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

/// `trainer score ... | head -1`: a reader that closes the pipe is not a failure. The read end is
/// closed before the trainer writes anything, so every write meets a closed pipe.
#[test]
fn a_closed_pipe_ends_the_command_quietly_with_success() {
    let dir = tempfile::tempdir().unwrap();
    let hyps = dir.path().join("hyps.txt");
    let refs = dir.path().join("refs.txt");
    std::fs::write(&hyps, "red circles\nblue sky\n").unwrap();
    std::fs::write(&refs, "red circles\nthe blue sky\n").unwrap();
    let mut child = trainer()
        .args(["score", "--metric", "bleu", "--hyps"])
        .arg(&hyps)
        .arg("--refs")
        .arg(&refs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

#[test]
fn analyze_counts_what_descriptions_name_per_layer_and_model() {
    let tmp = tempfile::tempdir().unwrap();
    // What `trainer describe` writes, and an annotations.csv in a model folder.
    let described = tmp.path().join("toy.csv");
    std::fs::write(
        &described,
        "layer,unit,description\nconv1,0,red circles\nconv1,1,blue stripes\n\
         conv2,0,dog faces\nconv2,1,cars next to trees\n",
    )
    .unwrap();
    let folder = tmp.path().join("corpus/resnet18/toy");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("annotations.csv"),
        "layer,unit,summary\nlayer1,0,green squares\nlayer1,0,\"a crowded, indoor scene\"\n",
    )
    .unwrap();
    let out = tmp.path().join("analysis");
    let stdout = succeeds(
        trainer()
            .arg("analyze")
            .arg("--descriptions")
            .arg(format!(
                "{},{}",
                described.display(),
                folder.join("annotations.csv").display()
            ))
            .arg("--out")
            .arg(&out),
    );
    assert!(
        stdout.contains("| toy | 4 | 50% | 25% | 50% | 25% | 25% | 25% | 0% |"),
        "{stdout}"
    );
    let mut rows = csv::Reader::from_path(out.join("analysis.csv")).unwrap();
    let header = rows.headers().unwrap().clone();
    let get = |row: &csv::StringRecord, name: &str| {
        row[header.iter().position(|h| h == name).unwrap()].to_owned()
    };
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let find = |model: &str, layer: &str| {
        rows.iter()
            .find(|r| &r[0] == model && &r[1] == layer)
            .unwrap_or_else(|| panic!("no row {model} {layer}"))
            .clone()
    };
    let conv1 = find("toy", "conv1");
    assert_eq!(get(&conv1, "depth"), "0.000");
    assert_eq!(get(&conv1, "colours"), "1.0000");
    assert_eq!(get(&conv1, "objects"), "0.0000");
    let conv2 = find("toy", "conv2");
    assert_eq!(get(&conv2, "depth"), "1.000");
    assert_eq!(get(&conv2, "objects"), "1.0000", "dogs, cars, trees");
    assert_eq!(get(&conv2, "parts"), "0.5000", "faces");
    assert_eq!(get(&conv2, "spatial_relations"), "0.5000", "next to");
    assert_eq!(get(&conv2, "mean_words"), "3.00");
    let toy = find("resnet18/toy", "(all)");
    assert_eq!(get(&toy, "descriptions"), "2");
    assert_eq!(
        get(&toy, "abstract_concepts"),
        "0.5000",
        "crowded, indoor, scene"
    );
    // A 2-of-4 share carries its Wilson interval.
    let all = find("toy", "(all)");
    assert_eq!(
        (get(&all, "colours_low"), get(&all, "colours_high")),
        ("0.1500".into(), "0.8500".into())
    );
    for png in [
        "analysis-models.png",
        "analysis-objects.png",
        "analysis-spatial-relations.png",
    ] {
        assert!(out.join(png).is_file(), "{png}");
    }
    assert!(
        std::fs::read_to_string(out.join("analysis.md"))
            .unwrap()
            .contains("## resnet18/toy")
    );

    // A file that is not a descriptions file is named, with its line.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "layer,unit,description\nconv1,first,red\n").unwrap();
    let run = trainer()
        .args(["analyze", "--out"])
        .arg(tmp.path().join("x"))
        .arg("--descriptions")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains("bad.csv:2: field unit: \"first\" is not a unit number"),
        "{err}"
    );
}

#[test]
fn audit_lists_units_mentioning_a_concept_with_their_exemplars_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    succeeds(
        trainer()
            .args(["synth", "--units-per-layer", "2", "--image-size", "16"])
            .args(["--keys", "alexnet/imagenet", "--out"])
            .arg(&corpus),
    );
    // A worker's description with markup in it, of unit 1 of conv2.
    let annotations = corpus.join("alexnet/imagenet/annotations.csv");
    let mut text = std::fs::read_to_string(&annotations).unwrap();
    text.push_str("conv2,1,\"<script>alert(1)</script> dog Faces\"\n");
    std::fs::write(&annotations, text).unwrap();
    let words = tmp.path().join("words.txt");
    std::fs::write(&words, "# more words\nmuzzle\n").unwrap();
    let report = tmp.path().join("audit");
    let stdout = succeeds(
        trainer()
            .args(["audit", "--concept", "faces", "--descriptions"])
            .arg(&annotations)
            .arg("--lexicon")
            .arg(&words)
            .arg("--out")
            .arg(&report),
    );
    assert!(
        stdout.lines().any(|l| l == "alexnet/imagenet\tconv2\t1"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(report.join("audit.html")).unwrap();
    assert!(!html.contains("<script>"), "markup is escaped");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; dog Faces <mark>faces</mark>"),
        "{html}"
    );
    assert!(html.contains("muzzle"), "the lexicon file's words count");
    assert!(html.contains("<img src=\"previews/alexnet-imagenet-conv2-1.png\""));
    let png = image::open(report.join("previews/alexnet-imagenet-conv2-1.png")).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (5 * 16 + 4 * 2, 3 * 16 + 2 * 2),
        "15 exemplars, 5 to a row"
    );
    let csv = std::fs::read_to_string(report.join("audit.csv")).unwrap();
    assert!(csv.contains("alexnet/imagenet,conv2,1,faces,"), "{csv}");
}

#[test]
fn ablate_compares_the_intact_and_the_ablated_classifier() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let weights = common::efficientnet_weights();
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut labels = String::from("image,label\n");
    for entry in std::fs::read_dir(root.join("tests/fixtures/efficientnet-lite0")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "png") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(&path, images.join(&name)).unwrap();
            // The fixtures are named imagenet_<i>_<class>.png.
            let class = name.trim_end_matches(".png").rsplit('_').next().unwrap();
            labels.push_str(&format!("{name},{class}\n"));
        }
    }
    std::fs::write(tmp.path().join("labels.csv"), labels).unwrap();
    // Every unit of the last block described as text: switching them all off changes predictions.
    let mut units = String::from("layer,unit,description\n");
    for u in 0..320 {
        units.push_str(&format!("_blocks.15,{u},letters on a sign\n"));
    }
    units.push_str("_blocks.3,0,red circles\n");
    std::fs::write(tmp.path().join("units.csv"), units).unwrap();
    let json = tmp.path().join("outcome.json");
    let stdout = succeeds(
        trainer()
            .args(["ablate", "--matching", "text", "--weights"])
            .arg(&weights)
            .arg("--units")
            .arg(tmp.path().join("units.csv"))
            .arg("--images")
            .arg(&images)
            .arg("--labels")
            .arg(tmp.path().join("labels.csv"))
            .arg("--out")
            .arg(&json),
    );
    assert!(stdout.contains("320 units off in 1 layers"), "{stdout}");
    let outcome: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let o = &outcome["outcome"];
    assert_eq!(o["images"], 10);
    assert_eq!(o["against_labels"], true);
    assert!(o["intact_accuracy"].as_f64().unwrap() >= 0.8, "{o}");
    assert!(
        o["ablated_accuracy"].as_f64().unwrap() < o["intact_accuracy"].as_f64().unwrap(),
        "{o}"
    );
    assert!(o["changed"].as_u64().unwrap() > 0);
    // A unit the block does not have is named.
    std::fs::write(
        tmp.path().join("bad.csv"),
        "layer,unit,description\n_blocks.0,99,text\n",
    )
    .unwrap();
    let run = trainer()
        .args(["ablate", "--units"])
        .arg(tmp.path().join("bad.csv"))
        .arg("--images")
        .arg(&images)
        .arg("--weights")
        .arg(&weights)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr)
            .contains("_blocks.0 has 16 units; unit 99 is not one of them")
    );
}

#[test]
fn latents_are_reproducible_recorded_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut cmd = trainer();
        cmd.args([
            "latents", "--count", "500", "--dim", "8", "--seed", "3", "--out",
        ])
        .arg(&out)
        .args(extra);
        succeeds(&mut cmd);
        out
    };
    let a = make("a.npy", &[]);
    let b = make("b.npy", &[]);
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same seed, same bytes"
    );
    let z: ndarray::Array2<f32> = ndarray_npy::read_npy(&a).unwrap();
    assert_eq!(z.dim(), (500, 8));
    let mean = z.mean().unwrap();
    assert!(mean.abs() < 0.1, "{mean}");
    assert!(
        z.iter().any(|v| v.abs() > 2.0),
        "plain normal draws reach past 2"
    );

    let t = make(
        "t.npy",
        &[
            "--truncation",
            "0.5",
            "--classes",
            "10",
            "--class-input",
            "y",
        ],
    );
    let z: ndarray::Array2<f32> = ndarray_npy::read_npy(&t).unwrap();
    assert!(
        z.iter().all(|v| v.abs() <= 1.0),
        "truncated at 2, times 0.5"
    );
    let y: ndarray::Array1<i64> = ndarray_npy::read_npy(dir.path().join("t.y.npy")).unwrap();
    assert_eq!(y.len(), 500);
    assert!(y.iter().all(|c| (0..10).contains(c)));
    assert!(
        (0..10).all(|c| y.iter().any(|v| *v == c)),
        "every class drawn"
    );
    let recipe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("t.json")).unwrap()).unwrap();
    assert_eq!(recipe["distribution"], "truncated-normal");
    assert_eq!(recipe["inputs"]["z"], "t.npy");
    assert_eq!(recipe["inputs"]["y"], "t.y.npy");
    assert_eq!(recipe["seed"], 3);
    assert_eq!(
        milan_trainer::probing::latents::read_recipe(&t)
            .unwrap()
            .classes,
        Some(10)
    );
    // A changed file no longer matches its recipe.
    std::fs::write(dir.path().join("t.y.npy"), b"changed").unwrap();
    let err = milan_trainer::probing::latents::read_recipe(&t).unwrap_err();
    assert!(
        format!("{err:#}").contains("the latents changed since"),
        "{err:#}"
    );

    let out = trainer()
        .args(["latents", "--count", "0", "--dim", "8", "--out"])
        .arg(dir.path().join("bad.npy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--count must be at least 1"));
}
