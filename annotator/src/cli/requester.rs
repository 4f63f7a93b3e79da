//! `annotator requester`.

use super::*;

/// Create a requester account for the web pages, or set its password (read from stdin, or
/// the file given).
#[derive(Debug, clap::Args)]
pub struct RequesterArgs {
    #[command(flatten)]
    pub storage: Storage,
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

pub fn run(args: RequesterArgs) -> Result<()> {
    let RequesterArgs {
        storage,
        username,
        password_file,
    } = args;
    let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
    let password = read_password(password_file.as_deref())?;
    state
        .accounts()
        .set_requester_password(&username, &password, now_ms())?;
    println!("requester {username} can sign in at /r/signin");
    Ok(())
}
