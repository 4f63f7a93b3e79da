//! `trainer catalog`: the Neuron Catalog built from a small synthetic corpus and two description
//! files (one hostile), checked as files (every unit reachable by links from the home page, every
//! link and image resolving, crowd text escaped and under its source) and then driven in headless
//! Chromium by `e2e/catalog.test.mjs` (search, filters, unit pages, keyboard, screenshots).
//!
//! The browser half needs `/usr/bin/chromium` and `e2e/node_modules` (scripts/test installs both:
//! `apt-get install chromium`, `npm ci --prefix e2e`). Screenshots go to
//! `target/browser-screenshots/catalog/`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use milan_shared::lexicon::singular;
use milan_shared::tokenize::tokenize;

const HOSTILE: &str = "<script>alert('x')</script><img src=x onerror=alert(1)> & \"stars\"";

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run trainer");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A corpus of two models (alexnet's conv2 has 101 units, so its grid is paged) and
/// two description files: a `describe`-style CSV with a model column, and a predictions.csv.
fn corpus(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let data = dir.join("data");
    let (ok, out) = run(trainer().args([
        "synth",
        "--out",
        data.to_str().unwrap(),
        "--units-per-layer",
        "101",
        "--keys",
        "alexnet/imagenet,resnet152/places365",
    ]));
    assert!(ok, "{out}");
    let milan = dir.join("milan.csv");
    let mut w = csv::Writer::from_path(&milan).unwrap();
    w.write_record(["model", "layer", "unit", "description"])
        .unwrap();
    w.write_record(["alexnet/imagenet", "conv1", "3", HOSTILE])
        .unwrap();
    for unit in 0..40 {
        w.write_record([
            "alexnet/imagenet",
            "conv2",
            &unit.to_string(),
            if unit % 2 == 0 {
                "red star shapes"
            } else {
                "blue stripes on the left"
            },
        ])
        .unwrap();
    }
    w.flush().unwrap();
    let predictions = dir.join("predictions.csv");
    std::fs::write(
        &predictions,
        "model,layer,unit,prediction,captioner_greedy,reference_1\n\
         resnet152/places365,4,0,stars in the sky,green things,x\n\
         resnet152/places365,4,1,,empty prediction,x\n",
    )
    .unwrap();
    (data, milan, predictions)
}

/// Every `href="..."` and `src="..."` of a page.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    out
}

/// Walks the site's links from index.html: every page reached, and each link's target checked.
fn crawl(site: &Path) -> BTreeSet<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([site.join("index.html")]);
    while let Some(page) = queue.pop_front() {
        let page = page.canonicalize().unwrap();
        if !seen.insert(page.clone()) {
            continue;
        }
        let html = std::fs::read_to_string(&page).unwrap();
        for link in links(&html) {
            assert!(
                !link.contains("://") && !link.starts_with("//"),
                "{}: an external link {link}",
                page.display()
            );
            let file = link.split('#').next().unwrap();
            if file.is_empty() || file == "search.html" && link.contains('?') {
                continue;
            }
            let target = page.parent().unwrap().join(file);
            assert!(target.exists(), "{}: {link} leads nowhere", page.display());
            if file.ends_with(".html") {
                queue.push_back(target);
            }
        }
    }
    seen
}

#[test]
fn the_catalog_links_every_unit_escapes_crowd_text_and_works_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (data, milan, predictions) = corpus(dir.path());
    let site = dir.path().join("site");
    let (ok, out) = run(trainer().args([
        "catalog",
        "--data",
        data.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
        "--title",
        "Test catalog",
        "--descriptions",
        &format!("MILAN base={}", milan.display()),
        "--descriptions",
        &format!("MILAN fit={}", predictions.display()),
    ]));
    assert!(ok, "{out}");
    assert!(out.contains("KB per unit"), "reports its size: {out}");

    // Every unit of the data has a page, reached by links from the home page.
    let dataset_units: usize = milan_shared::milannotations::discover(&data)
        .unwrap()
        .iter()
        .map(|f| {
            milan_shared::milannotations::Dataset::open(f)
                .unwrap()
                .layers()
                .iter()
                .map(|l| l.units())
                .sum::<usize>()
        })
        .sum();
    let reached = crawl(&site);
    let unit_pages = reached
        .iter()
        .filter(|p| {
            p.file_stem()
                .is_some_and(|s| s.to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        })
        .count();
    assert_eq!(unit_pages, dataset_units, "every unit's page is reachable");
    let alexnet_conv1 = site.join("alexnet-imagenet/conv1");
    assert!(
        site.join("alexnet-imagenet/conv2/page-2.html").exists(),
        "a layer of over 100 units is paged"
    );

    // Crowd text is escaped everywhere and shown under its source.
    let mut files = vec![site.join("search-index.js")];
    files.extend(reached.iter().cloned());
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("<script>alert") && !text.contains("<img src=x"),
            "{}: raw crowd text",
            f.display()
        );
    }
    let unit3 = std::fs::read_to_string(alexnet_conv1.join("3.html")).unwrap();
    assert!(
        unit3.contains(
            "<td><span class=\"src s1\">MILAN base</span></td><td>&lt;script&gt;alert(&#39;x&#39;)\
             &lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; &quot;stars&quot;</td>"
        ),
        "{unit3}"
    );
    assert_eq!(
        unit3.matches("<span class=\"src s0\">human</span>").count(),
        3,
        "its three human descriptions"
    );
    assert!(unit3.contains("Agreement among the 3 human descriptions"));
    assert_eq!(unit3.matches("img/3-full.jpg").count(), 15, "15 exemplars");
    let resnet = std::fs::read_to_string(site.join("resnet152-places365/4/0.html")).unwrap();
    assert!(
        resnet.contains("<span class=\"src s2\">MILAN fit</span></td><td>stars in the sky</td>"),
        "a predictions.csv shows MILAN-PMI's column"
    );
    let home = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(home.contains("% of descriptions naming it") && home.contains("<svg"));

    // Bad description files are refused naming file, line and field; nothing is written.
    for (rows, want) in [
        (
            "alexnet/imagenet,conv9,0,x",
            "milan-bad.csv:2: field layer: \"conv9\"",
        ),
        (
            "alexnet/imagenet,conv1,9999,x",
            "milan-bad.csv:2: field unit: 9999",
        ),
        (
            "vgg/imagenet,conv1,0,x",
            "milan-bad.csv:2: field model: \"vgg/imagenet\"",
        ),
    ] {
        let bad = dir.path().join("milan-bad.csv");
        std::fs::write(&bad, format!("model,layer,unit,description\n{rows}\n")).unwrap();
        let out_dir = dir.path().join("bad-site");
        let (ok, out) = run(trainer().args([
            "catalog",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--descriptions",
            bad.to_str().unwrap(),
        ]));
        assert!(!ok && out.contains(want), "{rows}: {out}");
        assert!(!out_dir.exists());
    }

    browser(&site, dir.path());
}

/// What the search must find, computed here from the same descriptions: units whose
/// descriptions hold `word` (plurals folded both ways), by model.
fn expected(site: &Path, word: &str) -> BTreeMap<String, usize> {
    let js = std::fs::read_to_string(site.join("search-index.js")).unwrap();
    let json = js
        .trim_start_matches("window.MILAN_CATALOG = ")
        .trim_end()
        .trim_end_matches(';');
    let index: serde_json::Value = serde_json::from_str(json).unwrap();
    let keys = |w: &str| -> Vec<String> {
        let mut k = vec![w.to_owned()];
        k.extend(singular(w));
        k
    };
    let want = keys(word);
    let mut units = BTreeSet::new();
    for t in index["texts"].as_array().unwrap() {
        let text = t[2].as_str().unwrap();
        if tokenize(text)
            .iter()
            .any(|w| keys(w).iter().any(|k| want.contains(k)))
        {
            units.insert(t[0].as_u64().unwrap());
        }
    }
    let mut by_model = BTreeMap::new();
    for u in units {
        let m = index["units"][u as usize][0].as_u64().unwrap() as usize;
        *by_model
            .entry(index["models"][m]["name"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    by_model
}

fn browser(site: &Path, dir: &Path) {
    let root = repo_root();
    let chromium = std::env::var("MILAN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "browser tests need Chromium at {chromium}: `apt-get install chromium` (scripts/test does it), \
         or set MILAN_CHROMIUM"
    );
    assert!(
        root.join("e2e/node_modules/playwright-core").exists(),
        "browser tests need playwright-core: run `npm ci --prefix e2e` (scripts/test does it)"
    );
    // The page's tokenizer and plural folding against ours, on tricky inputs.
    let samples = [
        "Red circles, boxes & bodies",
        "dog's faces; cats’ paws",
        "3.5 stripes... a.b",
        "GLASS buses churches dishes ties",
        "Ünïcode Straße ΣΑΣ naïve café",
        "black-and-white x2 under_score",
    ];
    let words: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| {
            let tokens: Vec<String> = tokenize(s)
                .into_iter()
                .filter(|t| t.chars().any(char::is_alphanumeric))
                .collect();
            let singulars: Vec<Option<String>> = tokens.iter().map(|t| singular(t)).collect();
            serde_json::json!({ "text": s, "tokens": tokens, "singulars": singulars })
        })
        .collect();
    let star = expected(site, "star");
    let shots = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("browser-screenshots")
        .join("catalog");
    std::fs::create_dir_all(&shots).unwrap();
    let expect = serde_json::json!({
        "words": words,
        "star": star,
        "hostile": HOSTILE,
    });
    let expect_file = dir.join("expect.json");
    std::fs::write(&expect_file, expect.to_string()).unwrap();
    let output = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(root.join("e2e/catalog.test.mjs"))
        .env("SITE", site)
        .env("CHROMIUM", &chromium)
        .env("EXPECT", &expect_file)
        .env("SCREENSHOT_DIR", &shots)
        .output()
        .expect("run node (install Node.js 20 or newer)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(output.status.success(), "browser tests failed:\n{text}");
    for name in [
        "home.png",
        "layer.png",
        "unit.png",
        "search.png",
        "unit-phone.png",
    ] {
        assert!(shots.join(name).exists(), "screenshot {name} missing");
    }
}
