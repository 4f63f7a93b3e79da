//! What several trainer tests share: where the fetched assets are.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// EfficientNet-Lite0's weights, or a failure that says how to get them.
pub fn efficientnet_weights() -> PathBuf {
    let dir = milan_trainer::assets::path("efficientnet-lite0").unwrap();
    let dir = if dir.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)
    } else {
        dir
    };
    let file = dir.join("efficientnet-lite0-57934424.pth");
    assert!(
        file.is_file(),
        "the EfficientNet-Lite0 weights are not at {}: run `trainer assets fetch efficientnet-lite0` \
         from the repository root (scripts/test does)",
        file.display()
    );
    file
}
