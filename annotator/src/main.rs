//! `annotator`: the task server where crowd workers describe neurons.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use milan_annotator::domain::{DAY_MS, MINUTE_MS, ProjectSettings, now_ms};
use milan_annotator::export::{self, Format};
use milan_annotator::server::{self, ServeConfig};
use milan_annotator::{db, import};

#[derive(Debug, Parser)]
#[command(
    name = "annotator",
    version,
    about = "A Mechanical-Turk-style task server for describing the neurons of vision networks",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args, Clone)]
struct Storage {
    /// Folder for the SQLite database and the exemplar images.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// postgres://... to use PostgreSQL (several server processes); SQLite in the data dir if absent.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the JSON API (and, when the database is empty, a demo project).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: String,
        #[command(flatten)]
        storage: Storage,
        /// Do not create the demo project in an empty database.
        #[arg(long)]
        no_demo: bool,
        /// How often leases are ended and submitted work auto-approved, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        sweep_interval_ms: u64,
        /// HTTP worker threads.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Another origin that MTurk's `turkSubmitTo` may name besides www.mturk.com and
        /// workersandbox.mturk.com (a stand-in for tests); repeatable.
        #[arg(long = "mturk-origin")]
        mturk_origins: Vec<String>,
    },
    /// Create or update the database schema.
    Migrate {
        #[command(flatten)]
        storage: Storage,
    },
    /// Import a MILANNOTATIONS model folder, or a root holding several, as exemplar sets.
    Import {
        #[command(flatten)]
        storage: Storage,
        /// Project to import into; created with the options below if it does not exist.
        #[arg(long)]
        project: String,
        /// Project title (new projects).
        #[arg(long)]
        title: Option<String>,
        #[arg(long, default_value_t = 3)]
        assignments_per_set: i32,
        #[arg(long, default_value_t = 0)]
        reward_cents: i64,
        /// Lease in minutes.
        #[arg(long, default_value_t = 30)]
        lease_minutes: i64,
        /// Auto-approval delay in days.
        #[arg(long, default_value_t = 3)]
        auto_approve_days: i64,
        /// Workers must pass the project's qualification test before taking tasks.
        #[arg(long)]
        qualification_required: bool,
        /// Prolific studies: the completion code participants are sent back with.
        #[arg(long)]
        prolific_code: Option<String>,
        path: PathBuf,
    },
    /// Create a requester account for the web pages, or set its password (read from stdin, or
    /// the file given).
    Requester {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Local worker accounts: set a password (stdin or file), or issue a one-time sign-in code.
    Worker {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        id: String,
        /// Print a one-time sign-in code instead of setting a password.
        #[arg(long)]
        code: bool,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Set a project's qualification test from a TOML file (docs/qualification.md).
    Qualification {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        project: String,
        /// Also require it before workers take tasks.
        #[arg(long)]
        required: bool,
        file: PathBuf,
    },
    /// Export a project's work.
    Export {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        project: String,
        /// milannotations (a folder), mturk-csv or jsonl (files).
        #[arg(long)]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Create a requester API token and print it (it is stored hashed and shown only once).
    RequesterToken {
        #[command(flatten)]
        storage: Storage,
    },
    /// Measure accept+submit throughput and latency (1, 16, 64 workers over HTTP) and accept
    /// latency with 10k and 1M sets. Uses temporary databases.
    Bench {
        /// A PostgreSQL admin URL (postgres://user@host:port/postgres) to measure PostgreSQL;
        /// SQLite by default.
        #[arg(long)]
        postgres: Option<String>,
        /// Sets in the HTTP cases.
        #[arg(long, default_value_t = 20_000)]
        http_sets: i64,
        /// Seconds per HTTP case.
        #[arg(long, default_value_t = 10)]
        http_seconds: u64,
        /// Sets in the large accept-latency case.
        #[arg(long, default_value_t = 1_000_000)]
        large_sets: i64,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            bind,
            storage,
            no_demo,
            sweep_interval_ms,
            workers,
            mturk_origins,
        } => {
            let config = ServeConfig {
                bind,
                data_dir: storage.data_dir,
                database_url: storage.database_url,
                demo: !no_demo,
                sweep_interval: std::time::Duration::from_millis(sweep_interval_ms.max(10)),
                workers: workers.max(1),
                web: milan_annotator::web::WebConfig {
                    extra_mturk_origins: mturk_origins,
                },
            };
            actix_web::rt::System::new().block_on(server::serve(config))
        }
        Command::Migrate { storage } => {
            let url = server::database_url(&storage.data_dir, storage.database_url.as_deref());
            std::fs::create_dir_all(&storage.data_dir)?;
            let database = db::Database::open(&url)?;
            println!("database {} is up to date", database.url());
            Ok(())
        }
        Command::Import {
            storage,
            project,
            title,
            assignments_per_set,
            reward_cents,
            lease_minutes,
            auto_approve_days,
            qualification_required,
            prolific_code,
            path,
        } => {
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            let mut settings = ProjectSettings::new(&project, title.as_deref().unwrap_or(&project));
            settings.assignments_per_set = assignments_per_set;
            settings.reward_cents = reward_cents;
            settings.lease_ms = lease_minutes * MINUTE_MS;
            settings.auto_approve_ms = auto_approve_days * DAY_MS;
            settings.qualification_required = qualification_required;
            settings.prolific_completion_code = prolific_code;
            let total = import::count_units(&path).context("nothing was imported")?;
            let bar = ProgressBar::new(total as u64).with_style(
                ProgressStyle::with_template(
                    "{spinner} import {bar:40} {pos}/{len} sets {elapsed} (eta {eta})",
                )
                .expect("valid template"),
            );
            let report = import::import(
                &state.engine,
                &state.images,
                &settings,
                &path,
                now_ms(),
                &|| bar.inc(1),
            )
            .with_context(|| format!("importing {} (nothing was imported)", path.display()))?;
            bar.finish_and_clear();
            println!(
                "project {}{}: {} sets added, {} already present, from {}",
                report.project,
                if report.project_created { " (new)" } else { "" },
                report.sets_added,
                report.sets_present,
                report.models.join(", ")
            );
            Ok(())
        }
        Command::Export {
            storage,
            project,
            format,
            out,
        } => {
            let format: Format = format.parse().map_err(anyhow::Error::msg)?;
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            match format {
                Format::Milannotations => {
                    let written =
                        export::milannotations(&state.engine, &state.images, &project, &out)?;
                    for dir in written {
                        println!("wrote {}", dir.display());
                    }
                }
                Format::MturkCsv | Format::Jsonl => {
                    // Written beside the target and renamed: never half a file at `out`.
                    let tmp = out.with_extension("tmp");
                    let file = std::fs::File::create(&tmp)
                        .with_context(|| format!("creating {}", tmp.display()))?;
                    let result = if format == Format::MturkCsv {
                        export::mturk_csv(&state.engine, &project, std::io::BufWriter::new(&file))
                    } else {
                        export::jsonl(&state.engine, &project, std::io::BufWriter::new(&file))
                    };
                    if let Err(e) = result.and_then(|()| file.sync_all().map_err(Into::into)) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e.into());
                    }
                    std::fs::rename(&tmp, &out)?;
                    println!("wrote {}", out.display());
                }
            }
            Ok(())
        }
        Command::Bench {
            postgres,
            http_sets,
            http_seconds,
            large_sets,
        } => milan_annotator::bench::run_bench(&milan_annotator::bench::BenchConfig {
            postgres_admin_url: postgres,
            http_sets,
            http_seconds,
            large_sets,
        }),
        Command::Requester {
            storage,
            username,
            password_file,
        } => {
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            let password = read_password(password_file.as_deref())?;
            milan_annotator::accounts::Accounts::new(state.engine.db().clone())
                .set_requester_password(&username, &password, now_ms())?;
            println!("requester {username} can sign in at /r/signin");
            Ok(())
        }
        Command::Worker {
            storage,
            id,
            code,
            password_file,
        } => {
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            let accounts = milan_annotator::accounts::Accounts::new(state.engine.db().clone());
            if code {
                println!("{}", accounts.issue_worker_code(&id, now_ms())?);
            } else {
                let password = read_password(password_file.as_deref())?;
                accounts.set_worker_password(&id, &password, now_ms())?;
                println!("worker {id} can sign in at /signin");
            }
            Ok(())
        }
        Command::Qualification {
            storage,
            project,
            required,
            file,
        } => {
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let test =
                milan_annotator::qualification::Qualifications::new(state.engine.db().clone())
                    .set_test(&project, &source, now_ms())
                    .with_context(|| format!("{} (nothing was changed)", file.display()))?;
            if required {
                state
                    .engine
                    .set_qualification_required(&project, true, now_ms())?;
            }
            println!(
                "project {project}: qualification test with {} questions, pass mark {}{}",
                test.questions.len(),
                test.pass_mark,
                if required { ", required" } else { "" }
            );
            Ok(())
        }
        Command::RequesterToken { storage } => {
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            println!("{}", state.auth.create_requester_token(now_ms())?);
            Ok(())
        }
    }
}

/// A password from a file or standard input (first line, without its line ending).
fn read_password(file: Option<&std::path::Path>) -> Result<String> {
    let text = match file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line
        }
    };
    Ok(text.lines().next().unwrap_or("").to_owned())
}
