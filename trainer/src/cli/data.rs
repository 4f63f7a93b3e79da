//! `trainer data`: the authors' released MILANNOTATIONS, fetched into a root that `trainer fit
//! --data` reads as it is.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use milan_trainer::assets::download::DEFAULT_URL_BASE;
use milan_trainer::corpora::released::milannotations::{self, Fetched};

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a key's or a group's zips (resumable, SHA-256 checked) and unpack each into
    /// <root>/<arch>/<dataset>.
    Fetch(FetchArgs),
    /// The keys present under a root, with their sizes.
    List {
        /// MILANNOTATIONS root.
        #[arg(long, default_value = "milannotations")]
        root: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// A key (alexnet/imagenet, or the authors' alexnet-imagenet) or a group (base, cls, gen,
    /// imagenet, places365, alexnet, resnet152, biggan).
    name: String,
    /// MILANNOTATIONS root: each key lands in <root>/<arch>/<dataset>; the SHA-256 manifest and
    /// partial downloads live under it too.
    #[arg(long, default_value = "milannotations")]
    root: PathBuf,
    /// A mirror of the authors' site: zips are fetched from <url-base>/data/<arch>-<dataset>.zip.
    #[arg(long, default_value = DEFAULT_URL_BASE)]
    url_base: String,
    /// ImageNet as an ImageFolder (train/ and val/, one folder per synset): keys whose images
    /// are pointers into val/ get their images.npy written from it.
    #[arg(long)]
    imagenet: Option<PathBuf>,
}

pub fn run(command: &DataCommand) -> Result<()> {
    match command {
        DataCommand::Fetch(args) => {
            let keys = milannotations::keys(&args.name)?;
            for key in &keys {
                let fetched = milannotations::fetch(
                    key,
                    &args.root,
                    &args.url_base,
                    args.imagenet.as_deref(),
                )?;
                let dir = args.root.join(key.arch()).join(key.dataset());
                match fetched {
                    Fetched::New => println!("{key}: fetched into {}", dir.display()),
                    Fetched::Present => println!("{key}: already in {}", dir.display()),
                }
            }
            // Only the keys just fetched: listing the whole root would walk every file in it.
            let mut pending = Vec::new();
            for key in &keys {
                if milannotations::has_pointers(&args.root.join(key.arch()).join(key.dataset()))? {
                    pending.push(key.to_string());
                }
            }
            if !pending.is_empty() {
                println!(
                    "{}: images are pointers into ImageNet; run again with --imagenet DIR to \
                     resolve them before `trainer fit`",
                    pending.join(", ")
                );
            }
        }
        DataCommand::List { root } => {
            let present = milannotations::list(root)?;
            if present.is_empty() {
                println!("no MILANNOTATIONS keys under {}", root.display());
            }
            println!(
                "{:<22} {:>10} {:>7} {:>7} {:>10}  images",
                "key", "size", "layers", "units", "annotated"
            );
            for p in present {
                println!(
                    "{:<22} {:>7.1} MB {:>7} {:>7} {:>10}  {}",
                    p.key.to_string(),
                    p.bytes as f64 / 1e6,
                    p.layers,
                    p.units,
                    p.annotated,
                    if p.images {
                        "yes"
                    } else {
                        "pointers (fetch again with --imagenet DIR)"
                    }
                );
            }
        }
    }
    Ok(())
}
