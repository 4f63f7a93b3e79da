//! `annotator`: the task server where crowd workers describe neurons.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

#[derive(Debug, Parser)]
#[command(
    name = "annotator",
    version,
    about = "A Mechanical-Turk-style task server for describing the neurons of vision networks",
    arg_required_else_help = true
)]
struct Cli {
    /// How log lines are written to stderr: text, or json (one object per line, with the
    /// request's id on every line of a request). RUST_LOG picks what is logged (default warn;
    /// `RUST_LOG=info` adds a line per request).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the JSON API (and, when the database is empty, a demo project).
    Serve(cli::serve::ServeArgs),
    /// Create or update the database schema; --check says whether a migration is pending.
    Migrate(cli::migrate::MigrateArgs),
    /// Take a consistent, checked backup of the live database into a file.
    Backup(cli::backup::BackupArgs),
    /// Replace the database with a backup (refused while a server has it open).
    Restore(cli::backup::RestoreArgs),
    /// Import a MILANNOTATIONS model folder, or a root holding several, as exemplar sets.
    Import(cli::import::ImportArgs),
    /// Create a requester account for the web pages, or set its password (read from stdin, or
    /// the file given).
    Requester(cli::requester::RequesterArgs),
    /// Local worker accounts: set a password (stdin or file), or issue a one-time sign-in code.
    Worker(cli::worker::WorkerArgs),
    /// Set a project's qualification test from a TOML file (docs/qualification.md).
    Qualification(cli::qualification::QualificationArgs),
    /// Export a project's work.
    Export(cli::export::ExportArgs),
    /// Requester API tokens: create one and print it (stored hashed, shown only this once), or
    /// list them, or revoke one.
    RequesterToken(cli::requester_token::RequesterTokenArgs),
    /// Live sessions of workers and requesters: list them, or end one or all of a worker's.
    Sessions(cli::sessions::SessionsArgs),
    /// MTurk: reconcile a project's MTurk work with the batch results MTurk gives the requester.
    Mturk {
        #[command(subcommand)]
        command: cli::mturk::MturkCommand,
    },
    /// Prolific: reconcile a study's participants with Prolific's export of its submissions.
    Prolific {
        #[command(subcommand)]
        command: cli::prolific::ProlificCommand,
    },
    /// Measure the worker loop (accept, then submit) over HTTP: loops/s, p50/p99 per request
    /// kind and CPU, per crowd size and server process count, then check the crowd guarantees.
    /// Uses temporary databases; the servers run with --no-rate-limits unless --rate-limits.
    Bench(cli::bench::BenchArgs),
}

fn main() -> ExitCode {
    milan_shared::closed_pipe::exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader has what it wanted (`| head -1`): not a failure.
        Err(err) if milan_shared::closed_pipe::is_closed_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Migrate(args) => cli::migrate::run(args),
        Command::Backup(args) => cli::backup::backup(args),
        Command::Restore(args) => cli::backup::restore(args),
        Command::Import(args) => cli::import::run(args),
        Command::Requester(args) => cli::requester::run(args),
        Command::Worker(args) => cli::worker::run(args),
        Command::Qualification(args) => cli::qualification::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::RequesterToken(args) => cli::requester_token::run(args),
        Command::Sessions(args) => cli::sessions::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Mturk { command } => cli::mturk::run(command),
        Command::Prolific { command } => cli::prolific::run(command),
    }
}
