//! `annotator import`.

use super::*;
use milan_annotator::import;

/// Import a MILANNOTATIONS model folder, or a root holding several, as exemplar sets.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub storage: Storage,
    /// Project to import into; created with the options below if it does not exist.
    #[arg(long)]
    pub project: String,
    /// Project title (new projects).
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long, default_value_t = 3)]
    pub assignments_per_set: i32,
    #[arg(long, default_value_t = 0)]
    pub reward_cents: i64,
    /// Lease in minutes.
    #[arg(long, default_value_t = 30)]
    pub lease_minutes: i64,
    /// Auto-approval delay in days.
    #[arg(long, default_value_t = 3)]
    pub auto_approve_days: i64,
    /// Workers must pass the project's qualification test before taking tasks.
    #[arg(long)]
    pub qualification_required: bool,
    /// Prolific studies: the completion code participants are sent back with.
    #[arg(long)]
    pub prolific_code: Option<String>,
    /// Put the project on MTurk: its ExternalQuestion page (`/mturk/<project>`) answers. Without
    /// it that page is 404, so MTurk-style URL parameters cannot open the project.
    #[arg(long)]
    pub mturk: bool,
    /// Live leases one worker may hold at once (accepting again returns one of them).
    #[arg(long, default_value_t = 1)]
    pub max_live_per_worker: i32,
    /// The largest single bonus, in cents.
    #[arg(long, default_value_t = milan_annotator::domain::DEFAULT_MAX_BONUS_CENTS)]
    pub max_bonus_cents: i64,
    /// Let anyone read the project's Neuron Catalog (`/catalog/<project>/`); without it only the
    /// requester may (the dashboard switches it later).
    #[arg(long)]
    pub public_catalog: bool,
    pub path: PathBuf,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let ImportArgs {
        storage,
        project,
        title,
        assignments_per_set,
        reward_cents,
        lease_minutes,
        auto_approve_days,
        qualification_required,
        prolific_code,
        mturk,
        max_live_per_worker,
        max_bonus_cents,
        public_catalog,
        path,
    } = args;
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
    settings.mturk = mturk;
    settings.max_live_per_worker = max_live_per_worker;
    settings.max_bonus_cents = max_bonus_cents;
    settings.catalog_public = public_catalog;
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
