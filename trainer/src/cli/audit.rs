//! `trainer audit`: the units whose descriptions mention a concept (faces in a model trained on
//! blurred faces, say), listed in a CSV and an HTML page with each unit's exemplars as a worker
//! sees them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use milan_catalog::pages::escape;
use milan_shared::atomic;
use milan_shared::milannotations::{Dataset, discover};
use milan_shared::tokenize::tokenize;
use milan_trainer::applications::analysis::{self, Concept, Described};

use super::preview;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Description files, comma-separated, as `trainer analyze` reads them.
    #[arg(long, value_delimiter = ',', required = true)]
    descriptions: Vec<PathBuf>,
    /// The concept: a word or phrase (comma-separated: several). Known concepts (faces, text,
    /// animals) bring their own words ("faces": face, head, eye, nose, mouth, portrait, ...).
    #[arg(long)]
    concept: String,
    /// More words or phrases for the concept: one per line, `#` starts a comment.
    #[arg(long)]
    lexicon: Option<PathBuf>,
    /// MILANNOTATIONS (a root or a model folder) with the exemplars of the described models, for
    /// the previews. Without it, an annotations.csv's own model folder is used when it has
    /// exemplars; otherwise the page lists descriptions only.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder: audit.csv, audit.html and previews/.
    #[arg(long)]
    out: PathBuf,
}

/// A description and its words that mention the concept.
type Marked<'a> = (&'a str, Vec<String>);

/// One listed unit: where it is, and its descriptions, marked.
struct Found<'a> {
    model: &'a str,
    layer: &'a str,
    unit: u32,
    descriptions: Vec<Marked<'a>>,
}

pub fn run(args: &AuditArgs) -> Result<()> {
    let extra = match &args.lexicon {
        Some(path) => Concept::read_words(path)?,
        None => Vec::new(),
    };
    let concept = Concept::new(&args.concept, &extra);
    let mut described: Vec<Described> = Vec::new();
    let mut folders: Vec<PathBuf> = Vec::new();
    for file in &args.descriptions {
        described.extend(analysis::read_descriptions(file)?);
        if file.file_name().is_some_and(|n| n == "annotations.csv")
            && let Some(dir) = file.parent()
        {
            folders.push(dir.to_owned());
        }
    }
    if let Some(data) = &args.data {
        folders.extend(discover(data)?);
    }
    let datasets: Vec<Dataset> = folders
        .iter()
        .filter_map(|f| Dataset::open(f).ok())
        .filter(|d| !d.layers().is_empty())
        .collect();

    // Units in the order they first appear; all of a unit's descriptions, marked.
    let mut order: Vec<(&str, &str, u32)> = Vec::new();
    let mut units: BTreeMap<(&str, &str, u32), Vec<Marked>> = BTreeMap::new();
    for d in &described {
        let key = (d.model.as_str(), d.layer.as_str(), d.unit);
        let entry = units.entry(key).or_insert_with(|| {
            order.push(key);
            Vec::new()
        });
        let tokens = tokenize(&d.description);
        let words = concept
            .mentions(&d.description)
            .into_iter()
            .map(|r| tokens[r].join(" "))
            .collect();
        entry.push((d.description.as_str(), words));
    }
    let found: Vec<Found> = order
        .iter()
        .filter_map(|key| {
            let descriptions = units.remove(key)?;
            descriptions
                .iter()
                .any(|(_, m)| !m.is_empty())
                .then_some(Found {
                    model: key.0,
                    layer: key.1,
                    unit: key.2,
                    descriptions,
                })
        })
        .collect();

    std::fs::create_dir_all(args.out.join("previews"))?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["model", "layer", "unit", "mentions", "description"])?;
    let mut previews = 0;
    let mut sections = String::new();
    for f in &found {
        for (text, words) in &f.descriptions {
            csv.write_record([
                f.model,
                f.layer,
                &f.unit.to_string(),
                &words.join(";"),
                text,
            ])?;
        }
        let image = preview_of(&datasets, f, &args.out.join("previews"))?;
        previews += usize::from(image.is_some());
        let _ = write!(
            sections,
            "<section><h2>{} / {} / unit {}</h2>",
            escape(f.model),
            escape(f.layer),
            f.unit
        );
        if let Some(name) = image {
            let _ = write!(
                sections,
                "<img src=\"previews/{}\" alt=\"the unit's 15 exemplars, its regions at full brightness\">",
                escape(&name)
            );
        }
        sections.push_str("<ul>");
        for (text, words) in &f.descriptions {
            if words.is_empty() {
                let _ = write!(sections, "<li>{}</li>", escape(text));
            } else {
                let _ = write!(
                    sections,
                    "<li>{} <mark>{}</mark></li>",
                    escape(text),
                    escape(&words.join(", "))
                );
            }
        }
        sections.push_str("</ul></section>\n");
    }
    atomic::write(&args.out.join("audit.csv"), &csv.into_inner()?)?;
    let total = order.len();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Units mentioning {name}</title><style>{STYLE}</style></head><body>\
         <h1>Units whose descriptions mention {name}</h1>\
         <p>{n} of {total} described units; words that count: {words}. Previews: {previews}.</p>\n\
         {sections}</body></html>\n",
        name = escape(&concept.name),
        n = found.len(),
        words = escape(&concept.words().join(", ")),
    );
    atomic::write(&args.out.join("audit.html"), html.as_bytes())?;
    for f in &found {
        println!("{}\t{}\t{}", f.model, f.layer, f.unit);
    }
    eprintln!(
        "{} of {total} units mention {}; wrote {}",
        found.len(),
        concept.name,
        args.out.join("audit.html").display()
    );
    Ok(())
}

const STYLE: &str = "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
section{border-top:1px solid #6b7280;padding:0.5rem 0}img{max-width:100%;image-rendering:pixelated}\
mark{background:#f0e442}";

/// Writes the unit's contact sheet when a dataset of its model has its exemplars; the file name.
fn preview_of(datasets: &[Dataset], f: &Found, dir: &Path) -> Result<Option<String>> {
    let Some(layer) = datasets
        .iter()
        .filter(|d| d.key().to_string() == f.model || datasets.len() == 1)
        .find_map(|d| d.layer(f.layer))
    else {
        return Ok(None);
    };
    if f.unit as usize >= layer.units() {
        return Ok(None);
    }
    let Some(sheet) = preview::sheet(layer, f.unit as usize) else {
        return Ok(None);
    };
    let name = format!("{}-{}-{}.png", f.model.replace('/', "-"), f.layer, f.unit);
    let path = dir.join(&name);
    sheet
        .save(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(name))
}
