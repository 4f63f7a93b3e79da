//! `annotator requester-token`.

use super::*;

/// Requester API tokens: create one and print it (stored hashed, shown only this once), or
/// list them, or revoke one.
#[derive(Debug, clap::Args)]
pub struct RequesterTokenArgs {
    #[command(flatten)]
    pub storage: Storage,
    /// A name for the new token (what it is for).
    #[arg(long, default_value = "")]
    pub label: String,
    /// List the tokens (id, label, created, revoked) instead.
    #[arg(long, conflicts_with_all = ["revoke", "label"])]
    pub list: bool,
    /// Revoke the token with this id (see --list).
    #[arg(long)]
    pub revoke: Option<i64>,
}

pub fn run(args: RequesterTokenArgs) -> Result<()> {
    let RequesterTokenArgs {
        storage,
        label,
        list,
        revoke,
    } = args;
    let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
    if list {
        println!("{:>4}  {:<30}  {:<31}  revoked", "id", "label", "created");
        for (id, label, created, revoked) in state.auth.requester_tokens()? {
            println!(
                "{id:>4}  {label:<30}  {:<31}  {}",
                milan_annotator::domain::mturk_time(created),
                revoked.map_or_else(|| "-".to_owned(), milan_annotator::domain::mturk_time)
            );
        }
    } else if let Some(id) = revoke {
        if !state.auth.revoke_requester_token(id, now_ms())? {
            anyhow::bail!("no live requester token with id {id} (see --list)");
        }
        println!("requester token {id} revoked");
    } else {
        let (id, token) = state.auth.create_requester_token(&label, now_ms())?;
        eprintln!("requester token {id} (revoke with: annotator requester-token --revoke {id})");
        println!("{token}");
    }
    Ok(())
}
