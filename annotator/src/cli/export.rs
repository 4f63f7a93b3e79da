//! `annotator export`.

use super::*;
use milan_annotator::export::{self, Format};

/// Export a project's work.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub storage: Storage,
    /// The project to export (its name, as in `annotator import --project`).
    #[arg(long)]
    pub project: String,
    /// milannotations (a folder), mturk-csv or jsonl (files).
    #[arg(long)]
    pub format: String,
    /// Where to write: a folder for milannotations (created; model folders go inside it), a
    /// file for mturk-csv and jsonl. Written to a temporary name and renamed when complete.
    #[arg(long)]
    pub out: PathBuf,
    /// The server's public URL, to write absolute image URLs into the MTurk CSV.
    #[arg(long)]
    pub public_url: Option<String>,
    /// milannotations only: `annotated` writes exemplars for units with an approved
    /// description (the others' rows stay zero, named in each layer's omitted.csv; layers
    /// without one are left out); `all` writes every unit's. Default: annotated.
    #[arg(long)]
    pub units: Option<export::Units>,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let ExportArgs {
        storage,
        project,
        format,
        out,
        public_url,
        units,
    } = args;
    let format: Format = format.parse().map_err(anyhow::Error::msg)?;
    if units.is_some() && format != Format::Milannotations {
        anyhow::bail!("--units applies to --format milannotations only");
    }
    let units = units.unwrap_or_default();
    let public_url = parse_public_url(public_url.as_deref())?;
    let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
    match format {
        Format::Milannotations => {
            let plan = export::Plan::of(&state.engine, &state.images, &project, units)?;
            println!(
                "exporting {} of {} units with their exemplars",
                plan.units_with_exemplars(),
                plan.units()
            );
            for dir in plan.write_folder(&state.images, &out)? {
                println!("wrote {}", dir.display());
            }
        }
        Format::MturkCsv | Format::Jsonl => {
            // Written beside the target and renamed: never half a file at `out`.
            let tmp = out.with_extension("tmp");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let result = if format == Format::MturkCsv {
                export::mturk_csv(
                    &state.engine,
                    &project,
                    public_url.as_ref(),
                    std::io::BufWriter::new(&file),
                )
            } else {
                export::jsonl(&state.engine, &project, std::io::BufWriter::new(&file))
            };
            if let Err(e) = result.and_then(|()| file.sync_all().map_err(Into::into)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
            std::fs::rename(&tmp, &out)?;
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}
