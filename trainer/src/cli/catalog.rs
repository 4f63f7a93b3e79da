//! `trainer catalog`: the Neuron Catalog as a static site
//! ([`milan_trainer::applications::catalog`] builds it; crate `milan-catalog` draws it).

use std::path::{Path, PathBuf};

use anyhow::Result;
use milan_catalog::sheet::Sizes;
use milan_trainer::applications::catalog::{self, Named};

#[derive(Debug, Clone, clap::Args)]
pub struct CatalogArgs {
    /// MILANNOTATIONS: a root of <arch>/<dataset> folders or one model folder. Its exemplar
    /// sets are shown, and its annotations.csv files as the human descriptions.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder (replaced whole when the site is ready).
    #[arg(long)]
    pub out: PathBuf,
    /// Descriptions to show under a name: NAME=FILE.csv (repeat for more). FILE is a `trainer
    /// describe` CSV (layer,unit,description), a `fit` predictions.csv (MILAN-PMI's column,
    /// with its model column) or any CSV with layer, unit and description columns; a bare
    /// FILE.csv is named after the file.
    #[arg(long = "descriptions", value_name = "NAME=FILE.csv")]
    pub descriptions: Vec<String>,
    /// The site's title.
    #[arg(long, default_value = "Neuron Catalog")]
    pub title: String,
    /// The name the data's own (human) descriptions are shown under.
    #[arg(long, default_value = "human")]
    pub human_name: String,
    /// Tile side of the exemplar sheets on layer and search pages, in pixels.
    #[arg(long, default_value_t = Sizes::default().thumb)]
    pub thumb: u32,
    /// Tile side on unit pages (never above the images' own size).
    #[arg(long, default_value_t = Sizes::default().full)]
    pub tile: u32,
    /// Threads drawing sheets (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl CatalogArgs {
    /// The defaults, for a catalog of `data` into `out` (`trainer describe --catalog`).
    #[cfg(feature = "train")]
    pub fn new(data: &Path, out: &Path) -> CatalogArgs {
        let sizes = Sizes::default();
        CatalogArgs {
            data: data.to_owned(),
            out: out.to_owned(),
            descriptions: Vec::new(),
            title: "Neuron Catalog".to_owned(),
            human_name: "human".to_owned(),
            thumb: sizes.thumb,
            tile: sizes.full,
            threads: None,
        }
    }
}

pub fn run(args: &CatalogArgs) -> Result<()> {
    let named = args
        .descriptions
        .iter()
        .map(|spec| Named::parse(spec))
        .collect::<Result<Vec<_>>>()?;
    build_and_write(args, &args.data, &named)
}

/// Builds the catalog of `data` with `named` descriptions and writes it as `args` say; reports
/// what was written.
pub fn build_and_write(args: &CatalogArgs, data: &Path, named: &[Named]) -> Result<()> {
    let started = std::time::Instant::now();
    let built = catalog::build(data, &args.title, &args.human_name, named)?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let sizes = Sizes {
        thumb: args.thumb.max(8),
        full: args.tile.max(8),
    };
    let w = catalog::write(&built, &args.out, sizes, threads)?;
    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "catalog of {} units ({} descriptions, {} sources) in {:.1} s: {} pages, {} images; \
         {:.1} MB in all ({:.1} KB per unit; sheets {:.1} MB, search index {:.1} MB) in {}",
        w.units,
        built.catalog.text_count(),
        built.catalog.sources.len(),
        started.elapsed().as_secs_f64(),
        w.pages,
        w.images,
        mb(w.bytes),
        w.bytes as f64 / 1e3 / w.units.max(1) as f64,
        mb(w.image_bytes),
        mb(w.index_bytes),
        args.out.join("index.html").display()
    );
    Ok(())
}
