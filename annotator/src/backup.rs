//! Backups of a live database, and restoring one.
//!
//! SQLite: `VACUUM INTO` a temporary file beside the target, from a connection of its own. In WAL
//! mode that is a reader: it copies one consistent snapshot (every transaction committed before
//! it began, nothing after) while writers go on committing; it never takes the write lock. The
//! copy is then checked (`PRAGMA integrity_check`, every table counted), synced and renamed into
//! place, so a backup file is whole or absent. PostgreSQL: `pg_dump --format=custom` (one
//! snapshot too) to a temporary file, checked with `pg_restore --list`, renamed into place.
//!
//! Restoring refuses a database that a server has open: `annotator serve` holds a shared lock on
//! `<database>.lock` (SQLite) for as long as it runs, and a restore needs it exclusively; on
//! PostgreSQL a restore refuses while any other session is connected to the database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use diesel::connection::SimpleConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl, sqlite::SqliteConnection};

use crate::db::{DatabaseUrl, Db};
use crate::domain::now_ms;

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// Rows of every table in the copy (SQLite), or the tables whose data the dump holds
    /// (PostgreSQL, with -1 rows: a dump is not counted without restoring it).
    pub tables: Vec<(String, i64)>,
    pub took: Duration,
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A string as an SQL literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Checks a SQLite file: `integrity_check` says ok, and every table is counted.
pub fn check_sqlite(path: &Path) -> Result<Vec<(String, i64)>> {
    ensure!(path.is_file(), "{}: no such file", path.display());
    let mut c = SqliteConnection::establish(&path.to_string_lossy())
        .with_context(|| format!("opening {}", path.display()))?;
    let verdict: Vec<Text> =
        diesel::sql_query("SELECT integrity_check AS value FROM pragma_integrity_check")
            .load(&mut c)
            .with_context(|| format!("{}: not a SQLite database", path.display()))?;
    let verdict: Vec<String> = verdict.into_iter().map(|t| t.value).collect();
    ensure!(
        verdict == ["ok"],
        "{}: integrity check failed: {}",
        path.display(),
        verdict.join("; ")
    );
    let tables: Vec<Text> = diesel::sql_query(
        "SELECT name AS value FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .load(&mut c)?;
    ensure!(
        tables.iter().any(|t| t.value == "assignments"),
        "{}: not an annotator database (no assignments table)",
        path.display()
    );
    tables
        .into_iter()
        .map(|t| {
            let n = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM \"{}\"", t.value))
                .get_result::<Count>(&mut c)?
                .n;
            Ok((t.value, n))
        })
        .collect()
}

/// A PostgreSQL client tool: on the PATH, or in Debian's `/usr/lib/postgresql/<v>/bin`.
fn pg_tool(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from(name))
}

fn run(tool: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
    let path = pg_tool(tool);
    let out = Command::new(&path).args(args).output().with_context(|| {
        format!(
            "running {} (install Debian's postgresql-client)",
            path.display()
        )
    })?;
    ensure!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Takes a consistent backup of the database at `url` into `out` (replaced atomically).
pub fn backup(url: &DatabaseUrl, out: &Path) -> Result<BackupReport> {
    let started = Instant::now();
    let pending = milan_shared::atomic::Pending::new(out)?;
    let tables = match url {
        DatabaseUrl::Sqlite(_) => {
            let Some(mut conn) = crate::db::connect_as_is(url)? else {
                bail!("{url}: no database to back up");
            };
            conn.batch_execute(&format!(
                "VACUUM INTO {}",
                literal(&pending.path().to_string_lossy())
            ))
            .with_context(|| format!("copying {url}"))?;
            drop(conn);
            check_sqlite(pending.path())?
        }
        DatabaseUrl::Postgres(pg) => {
            run(
                "pg_dump",
                &[
                    "--format=custom".as_ref(),
                    "--no-owner".as_ref(),
                    "--file".as_ref(),
                    pending.path().as_os_str(),
                    pg.as_ref(),
                ],
            )?;
            let list = run(
                "pg_restore",
                &["--list".as_ref(), pending.path().as_os_str()],
            )?;
            let tables: Vec<(String, i64)> = list
                .lines()
                .filter(|l| l.contains(" TABLE DATA "))
                .filter_map(|l| {
                    l.split_whitespace()
                        .rev()
                        .nth(1)
                        .map(|t| (t.to_owned(), -1))
                })
                .collect();
            ensure!(
                tables.iter().any(|(t, _)| t == "assignments"),
                "the dump of {url} holds no assignments table"
            );
            tables
        }
    };
    // It holds everything the database holds: readable by its owner only, whatever the umask.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(pending.path(), std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::File::open(pending.path())?.sync_all()?;
    pending.commit()?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(BackupReport {
        path: out.to_owned(),
        bytes: std::fs::metadata(out)?.len(),
        tables,
        took: started.elapsed(),
    })
}

/// The lock file of a SQLite database.
fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// A lock on a SQLite database's lock file, released when dropped: shared for a server, exclusive
/// for a restore. None for PostgreSQL.
#[derive(Debug)]
pub struct DbLock {
    _file: std::fs::File,
}

impl DbLock {
    fn take(url: &DatabaseUrl, exclusive: bool) -> Result<Option<DbLock>> {
        use std::os::unix::io::AsRawFd;
        let DatabaseUrl::Sqlite(path) = url else {
            return Ok(None);
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(path))?;
        let how = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } != 0 {
            bail!(if exclusive {
                format!(
                    "a server has {} open: stop it before restoring (its lock is {})",
                    path.display(),
                    lock_path(path).display()
                )
            } else {
                format!(
                    "{} is being restored; start the server after it",
                    path.display()
                )
            });
        }
        Ok(Some(DbLock { _file: file }))
    }

    /// What `annotator serve` holds while it runs.
    pub fn serving(url: &DatabaseUrl) -> Result<Option<DbLock>> {
        DbLock::take(url, false)
    }
}

/// Restores `file` (a backup of this kind of database) over the database at `url`, which no
/// server may have open. The restored database is migrated by the next start if it is older.
pub fn restore(url: &DatabaseUrl, file: &Path) -> Result<Vec<(String, i64)>> {
    match url {
        DatabaseUrl::Sqlite(target) => {
            let tables = check_sqlite(file)?;
            let _lock = DbLock::take(url, true)?;
            let pending = milan_shared::atomic::Pending::new(target)?;
            std::fs::copy(file, pending.path())
                .with_context(|| format!("copying {}", file.display()))?;
            std::fs::File::open(pending.path())?.sync_all()?;
            // The old database's log and index must not be read against the new file.
            for suffix in ["-wal", "-shm"] {
                let mut side = target.as_os_str().to_owned();
                side.push(suffix);
                match std::fs::remove_file(PathBuf::from(side)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            pending.commit()?;
            Ok(tables)
        }
        DatabaseUrl::Postgres(pg) => {
            let mut conn = crate::db::connect_as_is(url)?.context("connecting")?;
            let others = diesel::sql_query(
                "SELECT COUNT(*)::BIGINT AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .get_result::<Count>(&mut conn)?
            .n;
            ensure!(
                others == 0,
                "{others} other session(s) are connected to {url}: stop every server before \
                 restoring"
            );
            drop::<Db>(conn);
            run(
                "pg_restore",
                &[
                    "--clean".as_ref(),
                    "--if-exists".as_ref(),
                    "--no-owner".as_ref(),
                    "--single-transaction".as_ref(),
                    "--dbname".as_ref(),
                    pg.as_ref(),
                    file.as_os_str(),
                ],
            )?;
            Ok(Vec::new())
        }
    }
}

/// `serve --backup-dir DIR --backup-every D --backup-keep N`.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub dir: PathBuf,
    pub every: Duration,
    pub keep: usize,
}

const PREFIX: &str = "annotator-";

impl Schedule {
    /// The backups this schedule wrote, oldest first.
    pub fn existing(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(".backup"))
            })
            .collect();
        found.sort();
        found
    }

    /// Removes temporaries of backups that never finished (a server killed mid-backup).
    pub fn clean_unfinished(&self) {
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") && name.contains(PREFIX) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// One scheduled backup: a new file named by the time, then the oldest beyond `keep` removed.
    pub fn run_once(&self, url: &DatabaseUrl) -> Result<BackupReport> {
        let name = format!("{PREFIX}{}.backup", stamp(now_ms()));
        let report = backup(url, &self.dir.join(name))?;
        let existing = self.existing();
        for old in existing
            .iter()
            .take(existing.len().saturating_sub(self.keep))
        {
            std::fs::remove_file(old).with_context(|| format!("removing {}", old.display()))?;
        }
        Ok(report)
    }
}

/// A UTC time as `20261206T153012Z` (sortable), to the millisecond so that quick schedules (tests)
/// never reuse a name.
fn stamp(ms: i64) -> String {
    let t = crate::domain::civil_utc(ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millisecond
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server killed mid-backup leaves `Pending`'s temporary; the next start removes it and
    /// nothing else in the folder.
    #[test]
    fn unfinished_backups_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let schedule = Schedule {
            dir: dir.path().to_owned(),
            every: Duration::from_secs(1),
            keep: 2,
        };
        let target = dir.path().join(format!("{PREFIX}{}.backup", stamp(0)));
        let killed = milan_shared::atomic::Pending::new(&target).unwrap();
        std::fs::write(killed.path(), b"half a database").unwrap();
        let temporary = killed.path().to_owned();
        std::mem::forget(killed);
        std::fs::write(&target, b"a finished backup").unwrap();
        let unrelated = dir.path().join(".tmp-1-1-notes.txt");
        std::fs::write(&unrelated, b"someone else's").unwrap();

        schedule.clean_unfinished();
        assert!(!temporary.exists(), "{}", temporary.display());
        assert!(target.exists() && unrelated.exists());
        assert_eq!(schedule.existing(), vec![target]);
    }

    #[test]
    fn stamps_sort_as_times_do() {
        assert_eq!(super::stamp(0), "19700101T000000.000Z");
        assert_eq!(super::stamp(1_796_571_824_077), "20261206T154344.077Z");
    }
}
