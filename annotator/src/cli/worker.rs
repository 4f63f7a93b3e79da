//! `annotator worker`.

use super::*;

/// Local worker accounts: set a password (stdin or file), or issue a one-time sign-in code.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub storage: Storage,
    #[arg(long)]
    pub id: String,
    /// Print a one-time sign-in code instead of setting a password.
    #[arg(long)]
    pub code: bool,
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

pub fn run(args: WorkerArgs) -> Result<()> {
    let WorkerArgs {
        storage,
        id,
        code,
        password_file,
    } = args;
    let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
    let accounts = state.accounts();
    if code {
        println!("{}", accounts.issue_worker_code(&id, now_ms())?);
    } else {
        let password = read_password(password_file.as_deref())?;
        accounts.set_worker_password(&id, &password, now_ms())?;
        println!("worker {id} can sign in at /signin");
    }
    Ok(())
}
