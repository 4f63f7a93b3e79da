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
        /// Where workers and requesters reach the server, e.g. https://annotator.example.org:
        /// entry URLs on the dashboard, image URLs in the MTurk CSV, Secure cookies over https.
        /// Never taken from the Host header. Default: http://<bind> when --bind names one host.
        #[arg(long)]
        public_url: Option<String>,
        /// A reverse proxy (address or CIDR) whose X-Forwarded-For and X-Forwarded-Proto are
        /// believed; from anyone else they are ignored. Repeatable.
        #[arg(long = "trusted-proxy")]
        trusted_proxies: Vec<String>,
        /// API accepts, submits and returns per minute per worker session (0: no limit).
        #[arg(long, default_value_t = 60)]
        api_limit_per_credential: u32,
        /// API accepts, submits and returns per minute per client address (0: no limit).
        #[arg(long, default_value_t = 600)]
        api_limit_per_address: u32,
        /// Turn the API's rate limits off (both of the above), for benchmarks and load tests
        /// whose whole crowd comes from one address. Sign-in throttles, which count only
        /// failures, stay on.
        #[arg(long, conflicts_with_all = ["api_limit_per_credential", "api_limit_per_address"])]
        no_rate_limits: bool,
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
        /// Live leases one worker may hold at once (accepting again returns one of them).
        #[arg(long, default_value_t = 1)]
        max_live_per_worker: i32,
        /// The largest single bonus, in cents.
        #[arg(long, default_value_t = milan_annotator::domain::DEFAULT_MAX_BONUS_CENTS)]
        max_bonus_cents: i64,
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
        /// The project to export (its name, as in `annotator import --project`).
        #[arg(long)]
        project: String,
        /// milannotations (a folder), mturk-csv or jsonl (files).
        #[arg(long)]
        format: String,
        /// Where to write: a folder for milannotations (created; model folders go inside it), a
        /// file for mturk-csv and jsonl. Written to a temporary name and renamed when complete.
        #[arg(long)]
        out: PathBuf,
        /// The server's public URL, to write absolute image URLs into the MTurk CSV.
        #[arg(long)]
        public_url: Option<String>,
        /// milannotations only: `annotated` writes exemplars for units with an approved
        /// description (the others' rows stay zero, named in each layer's omitted.csv; layers
        /// without one are left out); `all` writes every unit's. Default: annotated.
        #[arg(long)]
        units: Option<export::Units>,
    },
    /// Requester API tokens: create one and print it (stored hashed, shown only this once), or
    /// list them, or revoke one.
    RequesterToken {
        #[command(flatten)]
        storage: Storage,
        /// A name for the new token (what it is for).
        #[arg(long, default_value = "")]
        label: String,
        /// List the tokens (id, label, created, revoked) instead.
        #[arg(long, conflicts_with_all = ["revoke", "label"])]
        list: bool,
        /// Revoke the token with this id (see --list).
        #[arg(long)]
        revoke: Option<i64>,
    },
    /// Live sessions of workers and requesters: list them, or end one or all of a worker's.
    Sessions {
        #[command(flatten)]
        storage: Storage,
        /// Only this worker's sessions.
        #[arg(long)]
        worker: Option<String>,
        /// End the session with this id (see the list).
        #[arg(long, conflicts_with = "revoke_all")]
        revoke: Option<String>,
        /// End every session of --worker.
        #[arg(long, requires = "worker")]
        revoke_all: bool,
    },
    /// MTurk: reconcile a project's MTurk work with the batch results MTurk gives the requester.
    Mturk {
        #[command(subcommand)]
        command: MturkCommand,
    },
    /// Prolific: reconcile a study's participants with Prolific's export of its submissions.
    Prolific {
        #[command(subcommand)]
        command: ProlificCommand,
    },
    /// Measure the worker loop (accept, then submit) over HTTP: loops/s, p50/p99 per request
    /// kind and CPU, per crowd size and server process count, then check the crowd guarantees.
    /// Uses temporary databases; the servers run with --no-rate-limits unless --rate-limits.
    Bench {
        /// A PostgreSQL admin URL (postgres://user@host:port/postgres): each case gets a fresh
        /// database there. SQLite in a scratch folder by default.
        #[arg(long)]
        postgres: Option<String>,
        /// Exemplar sets (three slots each) in each case's database.
        #[arg(long, default_value_t = 10_000)]
        sets: i64,
        /// Concurrent workers, one case each (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "16,64")]
        workers: Vec<usize>,
        /// Server processes on the one database, one case each (comma-separated; PostgreSQL
        /// only beyond 1), e.g. 1,2,4.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        processes: Vec<usize>,
        /// Seconds per case.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// HTTP worker threads of each server process.
        #[arg(long, default_value_t = 4)]
        http_threads: usize,
        /// Run the largest crowd again on this many sets (e.g. 1000000; 0: not).
        #[arg(long, default_value_t = 0)]
        large_sets: i64,
        /// Keep the servers' default rate limits on (they refuse most of a one-address crowd).
        #[arg(long)]
        rate_limits: bool,
    },
}

#[derive(Debug, Subcommand)]
enum MturkCommand {
    /// Match every MTurk assignment started here with MTurk's batch results CSV (AssignmentId,
    /// WorkerId, HITId, Answer.description): matches become verified, the rest are flagged and
    /// listed, and so is work MTurk knows of that was never done here.
    Reconcile {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        project: String,
        /// Reject the flagged work that was submitted, with this feedback (its slots reopen).
        #[arg(long)]
        reject_flagged: Option<String>,
        /// MTurk's batch results CSV.
        results: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ProlificCommand {
    /// Match a study's participants with Prolific's export of its submissions (or a list of
    /// participant ids, one per line): matches become verified, the rest are flagged.
    Reconcile {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        project: String,
        #[arg(long)]
        study: String,
        /// Reject the flagged work that was submitted, with this feedback (its slots reopen).
        #[arg(long)]
        reject_flagged: Option<String>,
        export: PathBuf,
    },
}

fn parse_public_url(url: Option<&str>) -> Result<Option<milan_annotator::origin::PublicUrl>> {
    url.map(milan_annotator::origin::PublicUrl::parse)
        .transpose()
        .map_err(anyhow::Error::msg)
}

fn print_reconciliation(r: &milan_annotator::engine::external::Reconciliation) {
    println!(
        "{} verified, {} flagged, {} on the platform but not here, {} rejected",
        r.verified,
        r.flagged.len(),
        r.not_here.len(),
        r.rejected
    );
    for (id, why) in &r.flagged {
        println!("flagged {id}: {why}");
    }
    for (id, what) in &r.not_here {
        println!("not here {id}: {what}");
    }
}

fn main() -> ExitCode {
    milan_shared::closed_pipe::exit_quietly_on_closed_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
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
        Command::Serve {
            bind,
            storage,
            no_demo,
            sweep_interval_ms,
            workers,
            mturk_origins,
            public_url,
            trusted_proxies,
            api_limit_per_credential,
            api_limit_per_address,
            no_rate_limits,
        } => {
            let public_url = parse_public_url(public_url.as_deref())?;
            let trusted_proxies = trusted_proxies
                .iter()
                .map(|p| milan_annotator::origin::parse_proxy(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
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
                public_url,
                trusted_proxies,
                api_limits: if no_rate_limits {
                    milan_annotator::limits::ApiLimits::off()
                } else {
                    milan_annotator::limits::ApiLimits::per_minute(
                        api_limit_per_credential,
                        api_limit_per_address,
                    )
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
            max_live_per_worker,
            max_bonus_cents,
            path,
        } => {
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            let mut settings = ProjectSettings::new(&project, title.as_deref().unwrap_or(&project));
            settings.assignments_per_set = assignments_per_set;
            settings.reward_cents = reward_cents;
            // Checked: a huge number of minutes must be an error, not an overflow.
            settings.lease_ms = lease_minutes
                .checked_mul(MINUTE_MS)
                .context("--lease-minutes is out of range")?;
            settings.auto_approve_ms = auto_approve_days
                .checked_mul(DAY_MS)
                .context("--auto-approve-days is out of range")?;
            settings.qualification_required = qualification_required;
            settings.prolific_completion_code = prolific_code;
            settings.max_live_per_worker = max_live_per_worker;
            settings.max_bonus_cents = max_bonus_cents;
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
            public_url,
            units,
        } => {
            let format: Format = format.parse().map_err(anyhow::Error::msg)?;
            if units.is_some() && format != Format::Milannotations {
                anyhow::bail!("--units applies to --format milannotations only");
            }
            let units = units.unwrap_or_default();
            let public_url = parse_public_url(public_url.as_deref())?;
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            match format {
                Format::Milannotations => {
                    let plan = export::Plan::of(&state.engine, &state.images, &project, units)?;
                    println!(
                        "exporting {} of {} units with their exemplars",
                        plan.units_with_exemplars(),
                        plan.units()
                    );
                    for dir in plan.write_folder(&state.images, &out)? {
                        println!("wrote {}", dir.display());
                    }
                }
                Format::MturkCsv | Format::Jsonl => {
                    // Written beside the target and renamed: never half a file at `out`.
                    let tmp = out.with_extension("tmp");
                    let file = std::fs::File::create(&tmp)
                        .with_context(|| format!("creating {}", tmp.display()))?;
                    let result = if format == Format::MturkCsv {
                        export::mturk_csv(
                            &state.engine,
                            &project,
                            public_url.as_ref(),
                            std::io::BufWriter::new(&file),
                        )
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
            sets,
            workers,
            processes,
            seconds,
            http_threads,
            large_sets,
            rate_limits,
        } => milan_annotator::bench::run_bench(&milan_annotator::bench::BenchConfig {
            postgres_admin_url: postgres,
            sets,
            workers,
            processes,
            seconds,
            http_threads,
            large_sets,
            rate_limits,
        })
        .map(|_| ()),
        Command::Requester {
            storage,
            username,
            password_file,
        } => {
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            let password = read_password(password_file.as_deref())?;
            state
                .accounts()
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
        Command::Qualification {
            storage,
            project,
            required,
            file,
        } => {
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let test = state
                .qualifications()
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
        Command::RequesterToken {
            storage,
            label,
            list,
            revoke,
        } => {
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            if list {
                println!("{:>4}  {:<30}  {:<31}  revoked", "id", "label", "created");
                for (id, label, created, revoked) in state.auth.requester_tokens()? {
                    println!(
                        "{id:>4}  {label:<30}  {:<31}  {}",
                        export::mturk_time(created),
                        revoked.map_or_else(|| "-".to_owned(), export::mturk_time)
                    );
                }
            } else if let Some(id) = revoke {
                if !state.auth.revoke_requester_token(id, now_ms())? {
                    anyhow::bail!("no live requester token with id {id} (see --list)");
                }
                println!("requester token {id} revoked");
            } else {
                let (id, token) = state.auth.create_requester_token(&label, now_ms())?;
                eprintln!(
                    "requester token {id} (revoke with: annotator requester-token --revoke {id})"
                );
                println!("{token}");
            }
            Ok(())
        }
        Command::Sessions {
            storage,
            worker,
            revoke,
            revoke_all,
        } => {
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
                        export::mturk_time(s.created_at),
                        export::mturk_time(s.expires_at)
                    );
                }
            }
            Ok(())
        }
        Command::Mturk {
            command:
                MturkCommand::Reconcile {
                    storage,
                    project,
                    reject_flagged,
                    results,
                },
        } => {
            let records = milan_annotator::reconcile::read_mturk_results(&results)?;
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            let report = state.engine.mturk_reconcile(
                &project,
                &records,
                reject_flagged.as_deref(),
                now_ms(),
            )?;
            print_reconciliation(&report);
            Ok(())
        }
        Command::Prolific {
            command:
                ProlificCommand::Reconcile {
                    storage,
                    project,
                    study,
                    reject_flagged,
                    export: file,
                },
        } => {
            let records = milan_annotator::reconcile::read_prolific_export(&file)?;
            let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
            let report = state.engine.prolific_reconcile(
                &project,
                &study,
                &records,
                reject_flagged.as_deref(),
                now_ms(),
            )?;
            print_reconciliation(&report);
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
