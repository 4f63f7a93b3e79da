//! `annotator migrate`.

use super::*;

/// Create or update the database schema.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub storage: Storage,
}

pub fn run(args: MigrateArgs) -> Result<()> {
    let MigrateArgs { storage } = args;
    let url = server::database_url(&storage.data_dir, storage.database_url.as_deref());
    std::fs::create_dir_all(&storage.data_dir)?;
    let database = db::Database::open(&url)?;
    println!("database {} is up to date", database.url());
    Ok(())
}
