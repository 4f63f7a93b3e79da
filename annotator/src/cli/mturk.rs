//! `annotator mturk reconcile`.

use super::*;

#[derive(Debug, clap::Subcommand)]
pub enum MturkCommand {
    /// Match every MTurk assignment started here with MTurk's batch results CSV (AssignmentId,
    /// WorkerId, HITId, Answer.description): matches become verified, the rest are flagged and
    /// listed, and so is work MTurk knows of that was never done here.
    Reconcile {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        project: String,
        /// Reject the flagged work that was submitted, with this feedback (its slots reopen).
        #[arg(long)]
        reject_flagged: Option<String>,
        /// MTurk's batch results CSV.
        results: PathBuf,
    },
}

pub fn run(command: MturkCommand) -> Result<()> {
    let MturkCommand::Reconcile {
        storage,
        project,
        reject_flagged,
        results,
    } = command;
    let records = milan_annotator::reconcile::read_mturk_results(&results)?;
    let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
    let report =
        state
            .engine
            .mturk_reconcile(&project, &records, reject_flagged.as_deref(), now_ms())?;
    print_reconciliation(&report);
    Ok(())
}
