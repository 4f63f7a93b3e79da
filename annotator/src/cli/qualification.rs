//! `annotator qualification`.

use super::*;

/// Set a project's qualification test from a TOML file (docs/qualification.md).
#[derive(Debug, clap::Args)]
pub struct QualificationArgs {
    #[command(flatten)]
    pub storage: Storage,
    #[arg(long)]
    pub project: String,
    /// Also require it before workers take tasks.
    #[arg(long)]
    pub required: bool,
    pub file: PathBuf,
}

pub fn run(args: QualificationArgs) -> Result<()> {
    let QualificationArgs {
        storage,
        project,
        required,
        file,
    } = args;
    let state = server::open_state(&storage.data_dir, storage.database_url.as_deref())?;
    let source =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
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
