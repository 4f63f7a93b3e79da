//! `annotator migrate`.

use super::*;

/// Create or update the database schema; with --check, only say whether it is up to date.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub storage: Storage,
    /// Change nothing: list the migrations this build would apply and exit with status 2 when
    /// there are any (0 when the database is up to date), e.g. before an upgrade.
    #[arg(long)]
    pub check: bool,
}

/// The exit status of `migrate --check` when migrations are pending.
pub const PENDING_STATUS: i32 = 2;

pub fn run(args: MigrateArgs) -> Result<()> {
    let MigrateArgs { storage, check } = args;
    let url = server::database_url(&storage.data_dir, storage.database_url.as_deref());
    if check {
        let pending = match db::connect_as_is(&url)? {
            Some(mut conn) => db::pending_migrations(&mut conn)?,
            None => db::migration_names(url.is_postgres()),
        };
        if pending.is_empty() {
            println!("database {url} is up to date");
            return Ok(());
        }
        println!(
            "database {url}: {} migration(s) pending (`annotator migrate`, or the next \
             `annotator serve`, applies them):",
            pending.len()
        );
        for name in &pending {
            println!("  {name}");
        }
        std::process::exit(PENDING_STATUS);
    }
    std::fs::create_dir_all(&storage.data_dir)?;
    let database = db::Database::open(&url)?;
    println!("database {} is up to date", database.url());
    Ok(())
}
