//! `trainer analyze`: what kinds of features descriptions name, per layer and per model
//! ([`milan_trainer::applications::analysis`] says how words are classed), as a table (CSV and Markdown) and
//! plots that put the models side by side.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use milan_shared::atomic;
use milan_trainer::applications::analysis::{self, Class, Lexicon, ModelProfile, Profile};
use milan_trainer::util::plot::{self, CategorySeries, IntervalSeries};

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Description files, comma-separated: CSVs `trainer describe` writes (layer,unit,description)
    /// or MILANNOTATIONS annotations.csv files (layer,unit,summary); a `model` column, the
    /// model folder of an annotations.csv, or the file name names each model.
    #[arg(long, value_delimiter = ',', required = true)]
    descriptions: Vec<PathBuf>,
    /// Output folder: analysis.csv, analysis.md, analysis-models.png and one
    /// analysis-<class>.png per class (share against relative depth, one line per model).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &AnalyzeArgs) -> Result<()> {
    let mut described = Vec::new();
    for file in &args.descriptions {
        described.extend(analysis::read_descriptions(file)?);
    }
    let models = analysis::profile(&Lexicon::default(), &described);
    std::fs::create_dir_all(&args.out)?;
    atomic::write(&args.out.join("analysis.csv"), &table_csv(&models)?)?;
    let markdown = table_markdown(&models);
    atomic::write(&args.out.join("analysis.md"), markdown.as_bytes())?;
    plots(&args.out, &models)?;
    print!("{markdown}");
    println!("\nwrote {}", args.out.display());
    Ok(())
}

/// A layer's depth in its model, 0 (first layer) to 1 (last), so models of different depth share
/// an axis.
fn depth(i: usize, layers: usize) -> f64 {
    if layers <= 1 {
        0.0
    } else {
        i as f64 / (layers - 1) as f64
    }
}

fn table_csv(models: &[ModelProfile]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "model".to_owned(),
        "layer".into(),
        "depth".into(),
        "descriptions".into(),
    ];
    for c in Class::ALL {
        let key = c.name().replace(' ', "_");
        header.extend([key.clone(), format!("{key}_low"), format!("{key}_high")]);
    }
    header.extend(["mean_words".into(), "vocabulary".into()]);
    w.write_record(&header)?;
    let row = |model: &str, layer: &str, depth: String, p: &Profile| {
        let mut r = vec![
            model.to_owned(),
            layer.to_owned(),
            depth,
            p.descriptions.to_string(),
        ];
        for c in Class::ALL {
            let s = p.share(c);
            r.extend([
                format!("{:.4}", s.share),
                format!("{:.4}", s.low),
                format!("{:.4}", s.high),
            ]);
        }
        r.extend([format!("{:.2}", p.mean_words), p.vocabulary.to_string()]);
        r
    };
    for m in models {
        for (i, (layer, p)) in m.layers.iter().enumerate() {
            w.write_record(row(
                &m.model,
                layer,
                format!("{:.3}", depth(i, m.layers.len())),
                p,
            ))?;
        }
        w.write_record(row(&m.model, "(all)", String::new(), &m.all))?;
    }
    Ok(w.into_inner()?)
}

fn table_markdown(models: &[ModelProfile]) -> String {
    let mut md = String::from("# What the descriptions name\n\n");
    md.push_str(
        "Share of descriptions naming each class at least once (classes by the lexicon of \
         `trainer/src/analysis.rs`), mean words per description and distinct words.\n\n",
    );
    let header = |first: &str| {
        let mut h = format!("| {first} | descriptions |");
        for c in Class::ALL {
            let _ = write!(h, " {} |", c.name());
        }
        h.push_str(" words | vocabulary |\n|---|---:|");
        h.push_str(&"---:|".repeat(Class::ALL.len() + 2));
        h.push('\n');
        h
    };
    let line = |name: &str, p: &Profile| {
        let mut l = format!("| {name} | {} |", p.descriptions);
        for c in Class::ALL {
            let _ = write!(l, " {:.0}% |", p.share(c).share * 100.0);
        }
        let _ = writeln!(l, " {:.1} | {} |", p.mean_words, p.vocabulary);
        l
    };
    md.push_str("## Models\n\n");
    md.push_str(&header("model"));
    for m in models {
        md.push_str(&line(&m.model, &m.all));
    }
    for m in models {
        let _ = write!(md, "\n## {}\n\n", m.model);
        md.push_str(&header("layer"));
        for (layer, p) in &m.layers {
            md.push_str(&line(layer, p));
        }
    }
    md
}

fn plots(out: &Path, models: &[ModelProfile]) -> Result<()> {
    let percent = |s: analysis::Share| (s.share * 100.0, s.low * 100.0, s.high * 100.0);
    let categories: Vec<String> = Class::ALL.iter().map(|c| c.name().to_owned()).collect();
    let series: Vec<CategorySeries> = models
        .iter()
        .map(|m| {
            (
                m.model.clone(),
                Class::ALL
                    .iter()
                    .map(|&c| Some(percent(m.all.share(c))))
                    .collect(),
            )
        })
        .collect();
    plot::category_interval_plot(
        &out.join("analysis-models.png"),
        "What each model's descriptions name (95% Wilson intervals)",
        &categories,
        "descriptions naming the class (%)",
        &series,
    )?;
    for class in Class::ALL {
        let series: Vec<IntervalSeries> = models
            .iter()
            .map(|m| {
                let n = m.layers.len();
                (
                    m.model.clone(),
                    m.layers
                        .iter()
                        .enumerate()
                        .map(|(i, (_, p))| {
                            let (share, low, high) = percent(p.share(class));
                            (depth(i, n), share, low, high)
                        })
                        .collect(),
                )
            })
            .collect();
        plot::interval_plot(
            &out.join(format!("analysis-{}.png", class.name().replace(' ', "-"))),
            &format!(
                "Descriptions naming {} by depth (95% Wilson intervals)",
                class.name()
            ),
            "relative depth of the layer (0: first described layer, 1: last)",
            "descriptions naming the class (%)",
            &series,
        )?;
    }
    Ok(())
}
