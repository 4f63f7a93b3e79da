//! The `trainer` binary as a user runs it.

use std::process::Command;

use milan_shared::milannotations::Dataset;

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
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
