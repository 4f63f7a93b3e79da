//! Memory stays flat when a pass goes over a layer far larger than memory should hold: a
//! 2048-unit layer of 15 exemplars at 224x224 (a 4.6 GB images.npy and a 1.5 GB masks.npy),
//! written through the writer and read back through the memory-mapped reader.
//!
//! Ignored by default (it writes 6.2 GB to the temp dir); CI runs it:
//!     cargo test --release -p milan-shared --test large_layer -- --ignored --nocapture
//! Set MILAN_LARGE_TEST_DIR to write somewhere other than the system temp dir.

use std::fs;
use std::time::Instant;

use milan_shared::ModelKey;
use milan_shared::milannotations::{
    Dataset, DatasetWriter, EXEMPLARS_PER_UNIT, IMAGE_SIZE, LayerShape,
};

const UNITS: usize = 2048;
const PEAK_RSS_LIMIT_MB: u64 = 300;

/// A field of /proc/self/status, in kB.
fn status_kb(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn fill(buf: &mut [u8], unit: usize, salt: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (unit.wrapping_mul(31) + i / 97 + salt) as u8;
    }
}

#[test]
#[ignore = "writes 6.2 GB; run with --ignored (CI does)"]
fn iterating_a_4_6_gb_layer_keeps_peak_rss_under_300_mb() {
    let base = std::env::var_os("MILAN_LARGE_TEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(base).unwrap();
    let key: ModelKey = "resnet152/imagenet".parse().unwrap();
    let shape = LayerShape {
        units: UNITS,
        k: EXEMPLARS_PER_UNIT,
        height: IMAGE_SIZE,
        width: IMAGE_SIZE,
    };

    let started = Instant::now();
    let mut writer = DatasetWriter::create(tmp.path(), &key).unwrap();
    let mut layer = writer.layer("layer4", shape, true).unwrap();
    let mut images = vec![0u8; shape.unit_len(3)];
    let mut masks = vec![0u8; shape.unit_len(1)];
    for unit in 0..UNITS {
        fill(&mut images, unit, 0);
        for (i, m) in masks.iter_mut().enumerate() {
            *m = u8::from((i + unit) % 7 == 0);
        }
        let ids: Vec<u64> = (0..EXEMPLARS_PER_UNIT as u64)
            .map(|j| unit as u64 * 100 + j)
            .collect();
        layer.write_unit(unit, &masks, Some(&images), &ids).unwrap();
    }
    layer.finish().unwrap();
    let dir = writer.finish().unwrap();
    let images_bytes = fs::metadata(dir.join("layer4/images.npy")).unwrap().len();
    println!(
        "wrote images.npy of {:.2} GB in {:.1?}",
        images_bytes as f64 / 1e9,
        started.elapsed()
    );
    assert!(images_bytes > 4_600_000_000);

    // Forget the writer's peak, then measure the reader alone.
    fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM needs Linux");
    let before_kb = status_kb("VmHWM:");
    let started = Instant::now();
    let dataset = Dataset::open(&dir).unwrap();
    let layer = dataset.layer("layer4").unwrap();
    let mut expected = vec![0u8; shape.unit_len(3)];
    let mut mask_ones = 0u64;
    let mut units = 0;
    for exemplars in layer.iter() {
        fill(&mut expected, exemplars.unit, 0);
        let got = exemplars.images.unwrap();
        assert!(
            got.as_slice().unwrap() == expected.as_slice(),
            "unit {} images differ",
            exemplars.unit
        );
        mask_ones += exemplars.masks.iter().map(|&m| u64::from(m)).sum::<u64>();
        assert_eq!(exemplars.ids[1], exemplars.unit as u64 * 100 + 1);
        units += 1;
    }
    assert_eq!(units, UNITS);
    assert!(mask_ones > 0);
    let peak_mb = status_kb("VmHWM:") / 1024;
    let elapsed = started.elapsed();
    println!(
        "read {UNITS} units ({:.2} GB) in {elapsed:.1?}: {:.0} MB/s; peak RSS {peak_mb} MB (before: {} MB; limit {PEAK_RSS_LIMIT_MB} MB)",
        images_bytes as f64 / 1e9,
        images_bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        before_kb / 1024
    );
    assert!(
        peak_mb < PEAK_RSS_LIMIT_MB,
        "peak RSS {peak_mb} MB while iterating, limit {PEAK_RSS_LIMIT_MB} MB"
    );
}
