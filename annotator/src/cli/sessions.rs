//! `annotator sessions`.

use super::*;

/// Live sessions of workers and requesters: list them, or end one or all of a worker's.
#[derive(Debug, clap::Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub storage: Storage,
    /// Only this worker's sessions.
    #[arg(long)]
    pub worker: Option<String>,
    /// End the session with this id (see the list).
    #[arg(long, conflicts_with = "revoke_all")]
    pub revoke: Option<String>,
    /// End every session of --worker.
    #[arg(long, requires = "worker")]
    pub revoke_all: bool,
}

pub fn run(args: SessionsArgs) -> Result<()> {
    let SessionsArgs {
        storage,
        worker,
        revoke,
        revoke_all,
    } = args;
    let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
    let now = now_ms();
    if let Some(id) = revoke {
        if !state.sessions.revoke(&id, now)? {
            anyhow::bail!("no live session {id}");
        }
        println!("session {id} ended");
    } else if revoke_all {
        let worker = worker.expect("clap requires --worker");
        let n = state.sessions.revoke_worker(&worker, now)?;
        println!("{n} session(s) of {worker} ended");
    } else {
        println!(
            "{:<36}  {:<24}  {:<9}  {:<31}  expires",
            "session", "who", "via", "started"
        );
        for s in state.sessions.list(worker.as_deref(), now)? {
            let who = match &s.subject {
                milan_annotator::sessions::Subject::Worker(w) => w.clone(),
                milan_annotator::sessions::Subject::Requester(r) => {
                    format!("requester {r}")
                }
            };
            println!(
                "{:<36}  {who:<24}  {:<9}  {:<31}  {}",
                s.public_id,
                s.via.as_str(),
                milan_annotator::domain::mturk_time(s.created_at),
                milan_annotator::domain::mturk_time(s.expires_at)
            );
        }
    }
    Ok(())
}
