//! `annotator backup` and `annotator restore`.

use super::*;

/// Take a consistent backup of the live database (the server keeps running).
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub storage: Storage,
    /// The backup file (written under a temporary name, checked, then renamed into place).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn backup(args: BackupArgs) -> Result<()> {
    let url = server::database_url(&args.storage.data_dir, args.storage.database_url.as_deref());
    let report = milan_annotator::backup::backup(&url, &args.out)?;
    println!(
        "backup of {url} written to {} ({} bytes, {:.1} s); checked:",
        report.path.display(),
        report.bytes,
        report.took.as_secs_f64()
    );
    for (table, rows) in &report.tables {
        if *rows >= 0 {
            println!("  {table}: {rows} rows");
        } else {
            println!("  {table}: data present");
        }
    }
    Ok(())
}

/// Replace the database with a backup. Refused while a server has the database open.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub storage: Storage,
    /// A file written by `annotator backup` or `serve --backup-dir`.
    pub file: PathBuf,
}

pub fn restore(args: RestoreArgs) -> Result<()> {
    let url = server::database_url(&args.storage.data_dir, args.storage.database_url.as_deref());
    let tables = milan_annotator::backup::restore(&url, &args.file)
        .with_context(|| format!("restoring {} over {url}", args.file.display()))?;
    // Migrate now if the backup is of an older schema, so the restore is complete when it ends.
    db::Database::open(&url)?;
    println!("restored {} over {url}", args.file.display());
    for (table, rows) in &tables {
        println!("  {table}: {rows} rows");
    }
    Ok(())
}
