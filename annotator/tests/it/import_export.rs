//! MILANNOTATIONS in and out, on both databases: import is whole-or-nothing and idempotent;
//! export gives back the exact arrays with the approved descriptions, and MTurk's CSV columns.

use crate::common;

use std::fs;
use std::path::Path;

use common::{TestDb, on_both};
use milan_annotator::domain::ProjectSettings;
use milan_annotator::engine::Engine;
use milan_annotator::export::{self, Units};
use milan_annotator::images::ImageStore;
use milan_annotator::import::{ImportError, import};
use milan_annotator::reports::Reports;
use milan_shared::milannotations::Dataset;
use milan_synth::SynthConfig;

const T0: i64 = 1_800_000_000_000;

fn corpus(dir: &Path, seed: u64) {
    let config = SynthConfig {
        units_per_layer: 2,
        image_size: 16,
        seed,
        keys: vec![
            "alexnet/imagenet".parse().unwrap(),
            "my_net/photos".parse().unwrap(),
        ],
    };
    milan_synth::generate(dir, &config, &|| {}).unwrap();
}

fn setup(db: &TestDb) -> (Engine, ImageStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        Engine::new(db.db.clone()),
        ImageStore::new(&dir.path().join("data")),
        dir,
    )
}

fn settings() -> ProjectSettings {
    ProjectSettings::new("p", "Describe neurons")
}

#[test]
fn import_is_idempotent_and_whole_or_nothing() {
    on_both(|db| {
        let (engine, store, dir) = setup(db);
        let root = dir.path().join("corpus");
        corpus(&root, 1);
        let rendered = std::cell::Cell::new(0);
        let report = import(&engine, &store, &settings(), &root, T0, &|| {
            rendered.set(rendered.get() + 1)
        })
        .unwrap();
        assert_eq!(rendered.get(), 20, "progress once per unit");
        assert!(report.project_created);
        assert_eq!(
            (report.sets_added, report.sets_present),
            (20, 0),
            "{}",
            db.name
        );
        assert_eq!(report.models, ["alexnet/imagenet", "my_net/photos"]);
        let again = import(&engine, &store, &settings(), &root, T0 + 1, &|| {}).unwrap();
        assert_eq!((again.sets_added, again.sets_present), (0, 20));
        // Other exemplars for the same units: refused as a whole.
        let other = dir.path().join("other");
        corpus(&other, 2);
        let err = import(&engine, &store, &settings(), &other, T0 + 2, &|| {}).unwrap_err();
        assert!(
            matches!(err, ImportError::Conflict(ref m) if m.contains("other exemplars")),
            "{err}"
        );
        assert_eq!(
            Reports::new(db.db.clone())
                .progress("p")
                .unwrap()
                .iter()
                .map(|r| r.sets)
                .sum::<i64>(),
            20
        );
    });
}

/// Images that cannot be stored (here `<data>/images` is a file) fail the import, whichever
/// rendering thread meets it first, and nothing reaches the database.
#[test]
fn an_image_store_that_cannot_be_written_imports_nothing() {
    on_both(|db| {
        let (engine, _, dir) = setup(db);
        let root = dir.path().join("corpus");
        corpus(&root, 1);
        let data = dir.path().join("broken");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("images"), b"not a folder").unwrap();
        let err = import(
            &engine,
            &ImageStore::new(&data),
            &settings(),
            &root,
            T0,
            &|| {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("images"), "{err}");
        assert!(engine.projects().unwrap().is_empty(), "{}", db.name);
    });
}

#[test]
fn a_bad_folder_imports_nothing() {
    on_both(|db| {
        let (engine, store, dir) = setup(db);
        let root = dir.path().join("corpus");
        corpus(&root, 1);
        let masks = root.join("my_net/photos/layer3/masks.npy");
        let bytes = fs::read(&masks).unwrap();
        fs::write(&masks, &bytes[..bytes.len() / 2]).unwrap();
        let err = import(&engine, &store, &settings(), &root, T0, &|| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer3/masks.npy") && err.contains("truncated"),
            "{err}"
        );
        assert!(
            engine.projects().unwrap().is_empty(),
            "{}: no project created",
            db.name
        );
        // Images of another shape than the masks.
        fs::write(&masks, &bytes).unwrap();
        let images = root.join("my_net/photos/layer2/images.npy");
        let good_images = fs::read(&images).unwrap();
        fs::copy(root.join("my_net/photos/layer2/masks.npy"), &images).unwrap();
        let err = import(&engine, &store, &settings(), &root, T0, &|| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer2/images.npy") && err.contains("shape mismatch"),
            "{err}"
        );
        assert!(engine.projects().unwrap().is_empty());
        fs::write(&images, good_images).unwrap();
        // No images.npy: workers could not see anything.
        fs::remove_file(root.join("alexnet/imagenet/conv2/images.npy")).unwrap();
        let err = import(&engine, &store, &settings(), &root, T0, &|| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("conv2: no images.npy"), "{err}");
        assert!(engine.projects().unwrap().is_empty());
    });
}

/// Three workers describe every set and the requester approves all but one, which is rejected
/// and redone by a fourth worker.
fn complete(engine: &Engine) {
    let mut t = T0 + 10;
    let mut rejected = false;
    for worker in ["w1", "w2", "w3", "w4"] {
        while let Some(a) = engine.accept_next("p", worker, t).unwrap() {
            t += 1;
            let text = format!("{worker} sees unit {} of {}.", a.set.unit, a.set.layer);
            engine
                .submit(&a.assignment.public_id, worker, &text, None, t)
                .unwrap();
            if !rejected {
                engine
                    .reject(
                        &a.assignment.public_id,
                        "Describe the highlighted regions.",
                        t,
                    )
                    .unwrap();
                rejected = true;
            } else {
                engine.approve(&a.assignment.public_id, t).unwrap();
            }
        }
    }
}

#[test]
fn milannotations_export_gives_back_the_arrays_and_the_approved_descriptions() {
    on_both(|db| {
        let (engine, store, dir) = setup(db);
        let root = dir.path().join("corpus");
        corpus(&root, 3);
        import(&engine, &store, &settings(), &root, T0, &|| {}).unwrap();
        complete(&engine);
        let out = dir.path().join("export");
        let plan = export::Plan::of(&engine, &store, "p", Units::All).unwrap();
        assert_eq!((plan.units_with_exemplars(), plan.units()), (20, 20));
        let written = plan.write_folder(&store, &out).unwrap();
        assert_eq!(written.len(), 2, "{}", db.name);
        same_as_archive(&plan, &store, &out);
        for key in ["alexnet/imagenet", "my_net/photos"] {
            let source = Dataset::open(&root.join(key)).unwrap();
            let exported = Dataset::open(&out.join(key)).unwrap();
            for (a, b) in source.layers().iter().zip(exported.layers()) {
                assert_eq!(a.name(), b.name());
                assert_eq!(a.shape(), b.shape());
                for unit in 0..a.units() {
                    let (x, y) = (a.exemplars(unit), b.exemplars(unit));
                    assert_eq!(x.masks, y.masks, "{key} {} {unit}", a.name());
                    assert_eq!(x.images, y.images);
                    assert_eq!(x.ids, y.ids);
                }
            }
            assert_eq!(
                exported.annotated().len(),
                source.annotated().len(),
                "every unit has 3"
            );
            assert!(exported.skipped().is_empty());
            for unit in exported.annotated() {
                let mut workers: Vec<&str> = unit.descriptions.iter().map(|d| &d[..2]).collect();
                workers.sort();
                workers.dedup();
                assert_eq!(
                    workers.len(),
                    3,
                    "three distinct workers: {:?}",
                    unit.descriptions
                );
                assert!(
                    unit.descriptions.iter().all(|d| !d.ends_with('.')),
                    "cleaned: {:?}",
                    unit.descriptions
                );
            }
        }
    });
}

/// The tar a download streams holds exactly the files of the folder export, byte for byte.
fn same_as_archive(plan: &export::Plan, store: &ImageStore, folder: &Path) {
    let tar = plan.write_archive(store, Vec::new()).unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    tar::Archive::new(&tar[..]).unpack(unpacked.path()).unwrap();
    let files = |root: &Path| {
        let mut found = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(path.strip_prefix(root).unwrap().to_owned());
                }
            }
        }
        found.sort();
        found
    };
    let (ours, theirs) = (files(folder), files(unpacked.path()));
    assert_eq!(ours, theirs, "the same files");
    assert!(!ours.is_empty());
    for file in ours {
        assert!(
            fs::read(folder.join(&file)).unwrap() == fs::read(unpacked.path().join(&file)).unwrap(),
            "{} differs between the folder and the archive",
            file.display()
        );
    }
}

#[test]
fn an_export_of_the_described_units_keeps_rows_zero_for_the_others() {
    on_both(|db| {
        let (engine, store, dir) = setup(db);
        let root = dir.path().join("corpus");
        corpus(&root, 5);
        import(&engine, &store, &settings(), &root, T0, &|| {}).unwrap();
        // Nothing approved yet: nothing to export but the exemplars, and the error says how.
        let err = export::Plan::of(&engine, &store, "p", Units::Annotated)
            .unwrap_err()
            .to_string();
        assert!(err.contains("units=all"), "{err}");
        // One approved description, of one unit.
        let a = engine.accept_next("p", "w1", T0 + 1).unwrap().unwrap();
        engine
            .submit(&a.assignment.public_id, "w1", "red circles", None, T0 + 2)
            .unwrap();
        engine.approve(&a.assignment.public_id, T0 + 3).unwrap();
        let (model, layer, unit) = (
            a.set.model.clone(),
            a.set.layer.clone(),
            a.set.unit as usize,
        );

        let plan = export::Plan::of(&engine, &store, "p", Units::Annotated).unwrap();
        assert_eq!(
            (plan.units_with_exemplars(), plan.units()),
            (1, 2),
            "{}",
            db.name
        );
        let out = dir.path().join("export");
        let written = plan.write_folder(&store, &out).unwrap();
        assert_eq!(
            written,
            [out.join(&model)],
            "only the model with a described unit"
        );
        same_as_archive(&plan, &store, &out);

        let source = Dataset::open(&root.join(&model)).unwrap();
        let exported = Dataset::open(&out.join(&model)).unwrap();
        let names: Vec<&str> = exported.layers().iter().map(|l| l.name()).collect();
        assert_eq!(
            names,
            [layer.as_str()],
            "only the layer with a described unit"
        );
        let (ours, theirs) = (
            exported.layer(&layer).unwrap(),
            source.layer(&layer).unwrap(),
        );
        assert_eq!(
            ours.shape(),
            theirs.shape(),
            "every row is kept: a row is a unit"
        );
        for u in 0..ours.units() {
            let (x, y) = (ours.exemplars(u), theirs.exemplars(u));
            assert_eq!(x.ids, y.ids, "ids of every unit are kept");
            if u == unit {
                assert!(ours.has_exemplars(u));
                assert_eq!(x.masks, y.masks);
                assert_eq!(x.images, y.images);
            } else {
                assert!(!ours.has_exemplars(u), "unit {u} is named in omitted.csv");
                assert!(x.masks.iter().all(|&v| v == 0));
                assert!(x.images.unwrap().iter().all(|&v| v == 0));
            }
        }
        assert_eq!(ours.omitted().collect::<Vec<_>>(), [1 - unit]);
        assert_eq!(
            exported.skipped().len(),
            1,
            "one description is fewer than three"
        );
        // The folder on disk is sparse: the zero rows take no blocks.
        let images = out.join(&model).join(&layer).join("images.npy");
        let meta = fs::metadata(&images).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 < meta.len(),
            "{} bytes in {} blocks",
            meta.len(),
            meta.blocks()
        );
    });
}

#[test]
fn mturk_csv_and_jsonl_have_every_submission() {
    on_both(|db| {
        let (engine, store, dir) = setup(db);
        let root = dir.path().join("corpus");
        corpus(&root, 4);
        import(&engine, &store, &settings(), &root, T0, &|| {}).unwrap();
        complete(&engine);
        let mut csv_bytes = Vec::new();
        export::mturk_csv(&engine, "p", None, &mut csv_bytes).unwrap();
        let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
        let headers = reader.headers().unwrap().clone();
        for column in export::MTURK_COLUMNS.iter().copied().chain([
            "Input.layer",
            "Input.unit",
            "Input.image_url_1",
            "Input.image_url_15",
            "Answer.summary",
        ]) {
            assert!(
                headers.iter().any(|h| h == column),
                "{column} missing: {headers:?}"
            );
        }
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 61, "{}: 60 approved + 1 rejected", db.name);
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let rejected: Vec<_> = rows
            .iter()
            .filter(|r| &r[col("AssignmentStatus")] == "Rejected")
            .collect();
        assert_eq!(rejected.len(), 1);
        assert!(!rejected[0][col("RejectionTime")].is_empty());
        assert_eq!(
            &rejected[0][col("RequesterFeedback")],
            "Describe the highlighted regions."
        );
        assert!(
            rows.iter()
                .all(|r| r[col("Input.image_url_1")].starts_with("/images/"))
        );
        let mut lines = Vec::new();
        export::jsonl(&engine, "p", &mut lines).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(lines)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 61);
        assert!(
            lines
                .iter()
                .all(|l| l["cleaned"].is_string() && l["worker"].is_string())
        );
    });
}

/// A description written as a spreadsheet formula stays text in the MTurk CSV (OWASP's rule), and
/// image URLs are absolute when the server's public URL is known.
#[test]
fn the_mturk_csv_neutralises_formulas_and_writes_absolute_image_urls() {
    on_both(|db| {
        let (engine, store, dir) = setup(db);
        let root = dir.path().join("corpus");
        corpus(&root, 5);
        import(&engine, &store, &settings(), &root, T0, &|| {}).unwrap();
        let formulas = [
            "=HYPERLINK(\"http://attacker.example\",\"click\") red dots",
            "+cmd|' /C calc'!A0 blue dots",
            "-2+3 green stripes",
            "@SUM(1+1) yellow squares",
        ];
        for (i, text) in formulas.iter().enumerate() {
            let worker = format!("w{i}");
            let a = engine.accept_next("p", &worker, T0 + 1).unwrap().unwrap();
            engine
                .submit(&a.assignment.public_id, &worker, text, None, T0 + 2)
                .unwrap();
        }
        let public =
            milan_annotator::origin::PublicUrl::parse("https://annotator.example.org").unwrap();
        let mut bytes = Vec::new();
        export::mturk_csv(&engine, "p", Some(&public), &mut bytes).unwrap();
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let headers = reader.headers().unwrap().clone();
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), formulas.len());
        for row in &rows {
            let answer = &row[col("Answer.summary")];
            assert!(
                answer.starts_with('\''),
                "{}: {answer:?} would run",
                db.name
            );
            assert!(
                formulas.contains(&&answer[1..]),
                "the text itself is kept: {answer:?}"
            );
            assert!(
                row[col("Input.image_url_1")].starts_with("https://annotator.example.org/images/"),
                "{:?}",
                &row[col("Input.image_url_1")]
            );
            for cell in row.iter() {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{cell:?}"
                );
            }
        }
    });
}
