//! `annotator prolific reconcile`.

use super::*;

#[derive(Debug, clap::Subcommand)]
pub enum ProlificCommand {
    /// Match a study's participants with Prolific's export of its submissions (or a list of
    /// participant ids, one per line): matches become verified, the rest are flagged.
    Reconcile {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        project: String,
        #[arg(long)]
        study: String,
        /// Reject the flagged work that was submitted, with this feedback (its slots reopen).
        #[arg(long)]
        reject_flagged: Option<String>,
        export: PathBuf,
    },
}

pub fn run(command: ProlificCommand) -> Result<()> {
    let ProlificCommand::Reconcile {
        storage,
        project,
        study,
        reject_flagged,
        export: file,
    } = command;
    let records = milan_annotator::reconcile::read_prolific_export(&file)?;
    let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
    let report = state.engine.prolific_reconcile(
        &project,
        &study,
        &records,
        reject_flagged.as_deref(),
        now_ms(),
    )?;
    print_reconciliation(&report);
    Ok(())
}
