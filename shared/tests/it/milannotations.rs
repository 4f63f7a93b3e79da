//! The MILANNOTATIONS reader and writer against files written by numpy (the reference's tool), and
//! every fault a user's folder can have.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use milan_shared::ModelKey;
use milan_shared::milannotations::{
    ArchiveWriter, ArchivedLayer, Array, Dataset, DatasetWriter, LayerShape, Rows, discover,
};
use ndarray::{Array5, IxDyn, ShapeBuilder};

fn reference_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")
}

const UNITS: usize = 3;
const K: usize = 15;
const SIZE: usize = 4;

/// The arrays scripts/fixtures/make_reference_folder.py writes, rebuilt from the same formulas.
fn reference_unit(u: usize) -> (Vec<u8>, Vec<u8>, Vec<u64>) {
    let mut masks = Vec::new();
    let mut images = Vec::new();
    for j in 0..K {
        for y in 0..SIZE {
            for x in 0..SIZE {
                masks.push(((u + j + y + x) % 2) as u8);
            }
        }
        for c in 0..3 {
            for y in 0..SIZE {
                for x in 0..SIZE {
                    images.push(((u * 7 + j * 5 + c * 3 + y * 2 + x) % 256) as u8);
                }
            }
        }
    }
    let ids = (0..K).map(|j| ((u * K + j) * 3) as u64).collect();
    (masks, images, ids)
}

/// Copies the numpy-written folder into a temp dir so that a test can break it.
fn copy_reference() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = reference_root().join("alexnet/imagenet");
    let dst = tmp.path().join("alexnet/imagenet");
    copy_dir(&src, &dst);
    (tmp, dst)
}

fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn reads_a_folder_written_by_numpy() {
    let dataset = Dataset::open(&reference_root().join("alexnet/imagenet")).unwrap();
    assert_eq!(dataset.key().to_string(), "alexnet/imagenet");
    assert_eq!(dataset.layers().len(), 1);
    let layer = &dataset.layers()[0];
    assert_eq!(layer.name(), "conv1");
    assert_eq!(
        layer.shape(),
        LayerShape {
            units: UNITS,
            k: K,
            height: SIZE,
            width: SIZE
        }
    );
    for (u, exemplars) in layer.iter().enumerate() {
        let (masks, images, ids) = reference_unit(u);
        assert_eq!(exemplars.masks.as_slice().unwrap(), masks.as_slice());
        assert_eq!(
            exemplars.images.unwrap().as_slice().unwrap(),
            images.as_slice()
        );
        assert_eq!(exemplars.ids, ids.as_slice());
        assert_eq!(exemplars.masks.shape(), &[K, 1, SIZE, SIZE]);
    }
}

#[test]
fn keeps_exactly_three_descriptions_and_reports_the_rest() {
    let dataset = Dataset::open(&reference_root().join("alexnet/imagenet")).unwrap();
    let annotated = dataset.annotated();
    assert_eq!(annotated.len(), 2);
    assert_eq!(annotated[0].unit, 0);
    assert_eq!(
        annotated[0].descriptions,
        [
            "red circles".to_owned(),
            "circles, red ones".to_owned(),
            "the \"red\" dots".to_owned()
        ]
    );
    assert_eq!(
        annotated[1].unit, 2,
        "four descriptions: the first three are used"
    );
    assert_eq!(annotated[1].descriptions[2], "lines going up");
    let skipped = dataset.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!((skipped[0].unit, skipped[0].descriptions), (1, 2));
    let neurons = dataset.neurons();
    assert_eq!(neurons[1].to_string(), "alexnet/imagenet:conv1:2");
}

#[test]
fn writes_the_same_bytes_as_numpy() {
    let tmp = tempfile::tempdir().unwrap();
    let key: ModelKey = "alexnet/imagenet".parse().unwrap();
    let mut writer = DatasetWriter::create(tmp.path(), &key).unwrap();
    let shape = LayerShape {
        units: UNITS,
        k: K,
        height: SIZE,
        width: SIZE,
    };
    let mut layer = writer.layer("conv1", shape, true).unwrap();
    // Units in reverse order: the writer must not depend on order.
    for u in (0..UNITS).rev() {
        let (masks, images, ids) = reference_unit(u);
        layer.write_unit(u, &masks, Some(&images), &ids).unwrap();
    }
    layer.finish().unwrap();
    let reference = Dataset::open(&reference_root().join("alexnet/imagenet")).unwrap();
    let raw = fs::read_to_string(reference.dir().join("annotations.csv")).unwrap();
    for line in raw.lines().skip(1) {
        let mut record = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let row = record.records().next().unwrap().unwrap();
        writer.describe(&row[0], row[1].parse().unwrap(), &row[2]);
    }
    let out = writer.finish().unwrap();
    assert_eq!(out, tmp.path().join("alexnet/imagenet"));
    for file in [
        "conv1/masks.npy",
        "conv1/images.npy",
        "conv1/ids.csv",
        "annotations.csv",
    ] {
        let ours = fs::read(out.join(file)).unwrap();
        let theirs = fs::read(reference.dir().join(file)).unwrap();
        let first_difference = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        assert!(
            ours.len() == theirs.len() && first_difference.is_none(),
            "{file} differs from numpy's: lengths {} and {}, first difference at byte {first_difference:?}",
            ours.len(),
            theirs.len()
        );
    }
}

#[test]
fn an_unfinished_writer_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let key: ModelKey = "resnet152/places365".parse().unwrap();
    {
        let mut writer = DatasetWriter::create(tmp.path(), &key).unwrap();
        let shape = LayerShape {
            units: 2,
            k: 1,
            height: 2,
            width: 2,
        };
        let mut layer = writer.layer("0", shape, false).unwrap();
        layer.write_unit(0, &[0, 1, 1, 0], None, &[5]).unwrap();
        // dropped without finishing: a crash or an error half-way
    }
    let arch = tmp.path().join("resnet152");
    assert_eq!(
        fs::read_dir(&arch).unwrap().count(),
        0,
        "no temp folder left"
    );
}

#[test]
fn finishing_with_a_missing_unit_fails_and_replacing_is_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let key: ModelKey = "my_net/photos".parse().unwrap();
    let shape = LayerShape {
        units: 2,
        k: 1,
        height: 1,
        width: 2,
    };
    let mut writer = DatasetWriter::create(tmp.path(), &key).unwrap();
    let mut layer = writer.layer("block1", shape, false).unwrap();
    layer.write_unit(0, &[1, 0], None, &[1]).unwrap();
    let err = layer.finish().unwrap_err().to_string();
    assert!(err.contains("unit 1 was never written"), "{err}");
    let err = writer.finish().unwrap_err().to_string();
    assert!(err.contains("never finished"), "{err}");

    // A finished folder replaces the previous one as a whole.
    for generation in 0..2u64 {
        let mut writer = DatasetWriter::create(tmp.path(), &key).unwrap();
        let mut layer = writer.layer("block1", shape, false).unwrap();
        layer.write_unit(0, &[1, 0], None, &[generation]).unwrap();
        layer.write_unit(1, &[0, 1], None, &[generation]).unwrap();
        layer.finish().unwrap();
        writer.finish().unwrap();
    }
    let dataset = Dataset::open(&tmp.path().join("my_net/photos")).unwrap();
    assert_eq!(dataset.key().to_string(), "my_net/photos");
    assert_eq!(dataset.layers()[0].ids(1), &[1]);
    assert!(!dataset.has_annotations());
    assert_eq!(fs::read_dir(tmp.path().join("my_net")).unwrap().count(), 1);
}

#[test]
fn writer_refuses_bad_units() {
    let tmp = tempfile::tempdir().unwrap();
    let key: ModelKey = "alexnet/imagenet".parse().unwrap();
    let mut writer = DatasetWriter::create(tmp.path(), &key).unwrap();
    let shape = LayerShape {
        units: 1,
        k: 1,
        height: 1,
        width: 2,
    };
    let mut layer = writer.layer("conv1", shape, true).unwrap();
    type Case<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u64], &'a str);
    let cases: [Case; 5] = [
        (&[0, 2], Some(&[0; 6]), &[0], "mask value 2"),
        (
            &[0, 1],
            None,
            &[0],
            "the layer has images but none were given",
        ),
        (&[0, 1], Some(&[0; 5]), &[0], "got 5 bytes, expected 6"),
        (&[0, 1, 1], Some(&[0; 6]), &[0], "got 3 bytes, expected 2"),
        (&[0, 1], Some(&[0; 6]), &[0, 1], "2 ids, expected 1"),
    ];
    for (masks, images, ids, expected) in cases {
        let err = layer
            .write_unit(0, masks, images, ids)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{expected}: {err}");
    }
    let err = layer
        .write_unit(1, &[0, 1], Some(&[0; 6]), &[0])
        .unwrap_err();
    assert!(err.to_string().contains("unit 1 out of range"), "{err}");
    assert!(writer.layer("conv1", shape, false).is_err(), "layer twice");
    assert!(
        writer.layer("../evil", shape, false).is_err(),
        "path in name"
    );
}

#[test]
fn discovers_model_folders_under_a_root() {
    let root = reference_root();
    assert_eq!(
        discover(&root).unwrap(),
        vec![root.join("alexnet/imagenet")]
    );
    assert_eq!(
        discover(&root.join("alexnet/imagenet")).unwrap(),
        vec![root.join("alexnet/imagenet")]
    );
    let empty = tempfile::tempdir().unwrap();
    let err = discover(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no MILANNOTATIONS model folder"), "{err}");
}

#[test]
fn layers_come_in_network_order() {
    let tmp = tempfile::tempdir().unwrap();
    let shape = LayerShape {
        units: 1,
        k: 1,
        height: 1,
        width: 1,
    };
    for (key, layers, expected) in [
        (
            "dino_vits8/imagenet",
            vec!["blocks.10.mlp.fc1", "blocks.2.mlp.fc1", "blocks.0.mlp.fc1"],
            vec!["blocks.0.mlp.fc1", "blocks.2.mlp.fc1", "blocks.10.mlp.fc1"],
        ),
        (
            "my_vit/photos",
            vec!["blocks.10", "blocks.2", "blocks.1"],
            vec!["blocks.1", "blocks.2", "blocks.10"],
        ),
    ] {
        let key: ModelKey = key.parse().unwrap();
        let mut writer = DatasetWriter::create(tmp.path(), &key).unwrap();
        for name in &layers {
            let mut layer = writer.layer(name, shape, false).unwrap();
            layer.write_unit(0, &[1], None, &[0]).unwrap();
            layer.finish().unwrap();
        }
        let dir = writer.finish().unwrap();
        let dataset = Dataset::open(&dir).unwrap();
        let names: Vec<&str> = dataset.layers().iter().map(|l| l.name()).collect();
        assert_eq!(names, expected);
    }
}

fn write_npy_f32(path: &Path, shape: &[usize]) {
    let array = ndarray::ArrayD::<f32>::zeros(IxDyn(shape));
    ndarray_npy::write_npy(path, &array).unwrap();
}

fn write_npy_u8(path: &Path, shape: &[usize]) {
    let array = ndarray::ArrayD::<u8>::zeros(IxDyn(shape));
    ndarray_npy::write_npy(path, &array).unwrap();
}

/// One broken folder per case: (what to break, the file the error must name, words it must say).
type Breakage = fn(&Path);

#[test]
fn every_fault_names_the_file_and_the_problem() {
    let cases: Vec<(&str, Breakage, &str, &str)> = vec![
        (
            "truncated masks",
            |d| {
                let p = d.join("conv1/masks.npy");
                let bytes = fs::read(&p).unwrap();
                fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
            },
            "conv1/masks.npy",
            "truncated array: 10 bytes of data missing",
        ),
        (
            "extra bytes",
            |d| {
                let p = d.join("conv1/images.npy");
                let mut bytes = fs::read(&p).unwrap();
                bytes.extend_from_slice(&[1, 2, 3]);
                fs::write(&p, bytes).unwrap();
            },
            "conv1/images.npy",
            "3 unexpected bytes",
        ),
        (
            "float masks",
            |d| write_npy_f32(&d.join("conv1/masks.npy"), &[3, 15, 1, 4, 4]),
            "conv1/masks.npy",
            "wrong dtype '<f4': expected uint8",
        ),
        (
            "not npy at all",
            |d| fs::write(d.join("conv1/masks.npy"), b"hello, world").unwrap(),
            "conv1/masks.npy",
            "not a valid .npy file",
        ),
        (
            "four dimensions",
            |d| write_npy_u8(&d.join("conv1/masks.npy"), &[3, 15, 4, 4]),
            "conv1/masks.npy",
            "expected 5 dimensions",
        ),
        (
            "three-channel masks",
            |d| write_npy_u8(&d.join("conv1/masks.npy"), &[3, 15, 3, 4, 4]),
            "conv1/masks.npy",
            "masks must have 1 channel",
        ),
        (
            "images of another size",
            |d| write_npy_u8(&d.join("conv1/images.npy"), &[3, 15, 3, 8, 8]),
            "conv1/images.npy",
            "masks/images shape mismatch",
        ),
        (
            "images of fewer units",
            |d| write_npy_u8(&d.join("conv1/images.npy"), &[2, 15, 3, 4, 4]),
            "conv1/images.npy",
            "masks/images shape mismatch",
        ),
        (
            "fortran order",
            |d| {
                let a = Array5::<u8>::zeros((3, 15, 1, 4, 4).f());
                ndarray_npy::write_npy(d.join("conv1/masks.npy"), &a).unwrap();
            },
            "conv1/masks.npy",
            "Fortran order",
        ),
        (
            "missing masks",
            |d| fs::remove_file(d.join("conv1/masks.npy")).unwrap(),
            "conv1/masks.npy",
            "every layer folder needs masks.npy",
        ),
        (
            "missing ids",
            |d| fs::remove_file(d.join("conv1/ids.csv")).unwrap(),
            "conv1/ids.csv",
            "No such file",
        ),
        (
            "short ids row",
            |d| fs::write(d.join("conv1/ids.csv"), "1,2,3\n").unwrap(),
            "conv1/ids.csv:1",
            "expected 15 ids, found 3",
        ),
        (
            "non-integer id",
            |d| {
                let row = (0..15).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
                let bad = row.replacen("7", "x7", 1);
                fs::write(d.join("conv1/ids.csv"), format!("{row}\n{bad}\n{row}\n")).unwrap();
            },
            "conv1/ids.csv:2",
            "field 8: \"x7\" is not a non-negative integer",
        ),
        (
            "ids of fewer units",
            |d| {
                let row = (0..15).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
                fs::write(d.join("conv1/ids.csv"), format!("{row}\n")).unwrap();
            },
            "conv1/ids.csv",
            "1 rows, but masks.npy has 3 units",
        ),
        (
            "unit out of range",
            |d| {
                fs::write(
                    d.join("annotations.csv"),
                    "layer,unit,summary\nconv1,0,dogs\nconv1,3,cats\n",
                )
                .unwrap()
            },
            "annotations.csv:3",
            "field unit: unit 3 out of range: layer conv1 has 3 units",
        ),
        (
            "negative unit",
            |d| {
                fs::write(
                    d.join("annotations.csv"),
                    "layer,unit,summary\nconv1,-1,dogs\n",
                )
                .unwrap()
            },
            "annotations.csv:2",
            "field unit: \"-1\" is not a non-negative integer",
        ),
        (
            "unknown layer",
            |d| {
                fs::write(
                    d.join("annotations.csv"),
                    "layer,unit,summary\nconv9,0,dogs\n",
                )
                .unwrap()
            },
            "annotations.csv:2",
            "field layer: unknown layer \"conv9\"; the layer folders here are conv1",
        ),
        (
            "bad utf-8",
            |d| {
                let mut bytes = b"layer,unit,summary\nconv1,0,dogs\nconv1,0,caf".to_vec();
                bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
                fs::write(d.join("annotations.csv"), bytes).unwrap();
            },
            "annotations.csv:3",
            "bad UTF-8 in field 3",
        ),
        (
            "missing header",
            |d| fs::write(d.join("annotations.csv"), "conv1,0,dogs\nconv1,0,cats\n").unwrap(),
            "annotations.csv:1",
            "missing header: expected the columns layer,unit,summary",
        ),
        (
            "empty annotations",
            |d| fs::write(d.join("annotations.csv"), "").unwrap(),
            "annotations.csv:1",
            "missing header",
        ),
        (
            "ragged row",
            |d| fs::write(d.join("annotations.csv"), "layer,unit,summary\nconv1,0\n").unwrap(),
            "annotations.csv:2",
            "expected 3 fields like the header, found 2",
        ),
        (
            "empty summary",
            |d| {
                fs::write(
                    d.join("annotations.csv"),
                    "layer,unit,summary\nconv1,0,  \n",
                )
                .unwrap()
            },
            "annotations.csv:2",
            "field summary: empty",
        ),
        (
            "stray folder",
            |d| fs::create_dir(d.join("notes")).unwrap(),
            "notes/masks.npy",
            "every layer folder needs masks.npy",
        ),
    ];
    for (name, breakage, file, expected) in cases {
        let (_tmp, dir) = copy_reference();
        breakage(&dir);
        let err = match Dataset::open(&dir) {
            Ok(_) => panic!("{name}: opened a broken folder"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("{}", dir.join(file).display())),
            "{name}: the error should name {file}: {err}"
        );
        assert!(err.contains(expected), "{name}: {err}");
    }
}

/// Rows of the reference layer, for the archive writer.
struct ReferenceRows;

impl Rows for ReferenceRows {
    fn row(&mut self, array: Array, unit: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
        let (masks, images, _) = reference_unit(unit);
        out.extend(if array == Array::Masks { masks } else { images });
        Ok(())
    }
}

fn reference_shape() -> LayerShape {
    LayerShape {
        units: UNITS,
        k: K,
        height: SIZE,
        width: SIZE,
    }
}

#[test]
fn the_archive_holds_numpys_bytes_and_names_omitted_units() {
    let reference = reference_root().join("alexnet/imagenet");
    let key: ModelKey = "alexnet/imagenet".parse().unwrap();
    let ids: Vec<Vec<u64>> = (0..UNITS).map(|u| reference_unit(u).2).collect();
    // annotations.csv describes unit 1 twice (and units 0 and 2 fully).
    let described = fs::read_to_string(reference.join("annotations.csv")).unwrap();
    assert!(described.contains("\nconv1,1,"));

    // Everything: the files numpy wrote, byte for byte.
    let mut archive = ArchiveWriter::new(Vec::new());
    let none = BTreeSet::new();
    let layer = ArchivedLayer {
        name: "conv1",
        shape: reference_shape(),
        with_images: true,
        ids: &ids,
        omitted: &none,
    };
    archive.layer(&key, layer, &mut ReferenceRows).unwrap();
    let tar = archive.finish().unwrap();
    let mut entries = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for entry in entries.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut ours = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut ours).unwrap();
        let file = name.strip_prefix("alexnet/imagenet/").unwrap();
        assert!(
            ours == fs::read(reference.join(file)).unwrap(),
            "{name} differs from numpy's"
        );
        names.push(file.to_owned());
    }
    assert_eq!(
        names,
        ["conv1/masks.npy", "conv1/images.npy", "conv1/ids.csv"]
    );

    // Unit 1 left out: zero rows, named in omitted.csv, and the reader knows.
    let omitted = BTreeSet::from([1]);
    let mut archive = ArchiveWriter::new(Vec::new());
    archive
        .layer(
            &key,
            ArchivedLayer {
                omitted: &omitted,
                ..layer
            },
            &mut ReferenceRows,
        )
        .unwrap();
    let tar = archive.finish().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    tar::Archive::new(&tar[..]).unpack(tmp.path()).unwrap();
    let read = Dataset::open(&tmp.path().join("alexnet/imagenet")).unwrap();
    let conv1 = read.layer("conv1").unwrap();
    assert_eq!(conv1.omitted().collect::<Vec<_>>(), [1]);
    assert!(conv1.has_exemplars(0) && !conv1.has_exemplars(1) && conv1.has_exemplars(2));
    assert!(conv1.exemplars(1).masks.iter().all(|&m| m == 0));
    assert_eq!(conv1.exemplars(1).ids, &ids[1][..], "ids are kept");
    let (masks, images, _) = reference_unit(2);
    assert_eq!(
        conv1.exemplars(2).masks.iter().copied().collect::<Vec<_>>(),
        masks
    );
    assert_eq!(
        conv1
            .exemplars(2)
            .images
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        images
    );

    // The folder writer writes the same omitted.csv.
    let folder = tempfile::tempdir().unwrap();
    let mut writer = DatasetWriter::create(folder.path(), &key).unwrap();
    let mut layer_writer = writer.layer("conv1", reference_shape(), true).unwrap();
    for u in 0..UNITS {
        let (masks, images, ids) = reference_unit(u);
        if u == 1 {
            layer_writer.omit(u, &ids).unwrap();
        } else {
            layer_writer
                .write_unit(u, &masks, Some(&images), &ids)
                .unwrap();
        }
    }
    layer_writer.finish().unwrap();
    let out = writer.finish().unwrap();
    for file in [
        "conv1/masks.npy",
        "conv1/images.npy",
        "conv1/ids.csv",
        "conv1/omitted.csv",
    ] {
        assert!(
            fs::read(out.join(file)).unwrap()
                == fs::read(tmp.path().join("alexnet/imagenet").join(file)).unwrap(),
            "{file}: the folder and the archive differ"
        );
    }

    // A described unit cannot be omitted; annotations for the others are fine.
    let without_unit_1: String = described
        .lines()
        .filter(|l| !l.starts_with("conv1,1,"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(out.join("annotations.csv"), without_unit_1).unwrap();
    assert!(Dataset::open(&out).is_ok());
    fs::write(out.join("annotations.csv"), &described).unwrap();
    let err = Dataset::open(&out).unwrap_err().to_string();
    assert!(
        err.contains("annotations.csv:") && err.contains("unit 1 of layer conv1 is described"),
        "{err}"
    );
}

#[test]
fn a_bad_omitted_csv_names_the_line() {
    let (_tmp, dir) = copy_reference();
    fs::remove_file(dir.join("annotations.csv")).unwrap();
    for (text, expected) in [
        (
            "unit\n7\n",
            "omitted.csv:2: \"7\" is not a unit of this layer (0 to 2)",
        ),
        ("unit\nx\n", "omitted.csv:2: \"x\" is not a unit"),
        ("units\n1\n", "omitted.csv:1: the header must be `unit`"),
    ] {
        fs::write(dir.join("conv1/omitted.csv"), text).unwrap();
        let err = Dataset::open(&dir).unwrap_err().to_string();
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}
