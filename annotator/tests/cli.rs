//! The `annotator` binary prints its usage until its commands are built.

use std::process::Command;

#[test]
fn prints_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_annotator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Usage: annotator"), "{stdout}");
    assert!(stdout.contains("task server"), "{stdout}");
}
