//! `trainer report`.

use std::path::PathBuf;

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// `trainer fit` run folders, one per split (or several), in the order of the table.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output folder for report.md and report.csv.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let md = milan_trainer::experiments::report::write(&args.runs, &args.out)?;
    print!("{md}");
    println!("\nreport.md and report.csv in {}", args.out.display());
    Ok(())
}
