//! Storage: connections, migrations, transactions, and every query of the annotator.
//!
//! One code path serves SQLite (the embedded default) and PostgreSQL (for several server
//! processes) through diesel's `MultiConnection`. SQLite runs in WAL mode with a busy timeout,
//! foreign keys on and `synchronous=FULL` (an acknowledged write survives a power cut); in the
//! server one connection applies every write, many requests to a transaction ([`group_commit`]),
//! at `synchronous=NORMAL` with a thread of its own syncing the log outside the writer and every
//! answer waiting for the sync of what it saw ([`wal_sync`]); each batch starts with
//! `BEGIN IMMEDIATE`, so another process's writer waits instead of failing half-way. The bundled SQLite is built with the query planner stability guarantee
//! (`SQLITE_ENABLE_QPSG`, set in `.cargo/config.toml`): otherwise a cached statement is compiled
//! again whenever a value bound to it might change its plan, which is every `LIMIT ?` and every
//! `state = ?` on a table with a partial index.
//! PostgreSQL runs at READ COMMITTED; what must never happen twice is held by unique indexes, and
//! [`Database::write`] retries a transaction that lost a race on one.

pub mod group_commit;
pub mod prepared;
pub mod queries;
pub mod schema;
pub mod wal_sync;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use group_commit::GroupCommit;

use diesel::connection::SimpleConnection;
#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// What a build without the `postgres` feature says when pointed at PostgreSQL.
#[cfg(not(feature = "postgres"))]
pub(crate) const NO_POSTGRES: &str = "this annotator was built without PostgreSQL support (the default \
    `postgres` feature; scripts/demo leaves it out to build faster). Build it with `cargo build \
    --release --locked -p milan-annotator` to use PostgreSQL";

/// A connection to either backend; queries are written once against it.
#[allow(missing_debug_implementations)] // the derive's generated types have no Debug either
#[derive(diesel::MultiConnection)]
pub enum Db {
    #[cfg(feature = "postgres")]
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// The arguments that point `annotator serve` (or any command) at this database.
    pub fn serve_args(&self) -> [std::ffi::OsString; 2] {
        let url = match self {
            DatabaseUrl::Sqlite(path) => path.as_os_str().to_owned(),
            DatabaseUrl::Postgres(url) => url.into(),
        };
        ["--database-url".into(), url]
    }

    /// `postgres://...` or `postgresql://...` is PostgreSQL; `sqlite://PATH` or a plain path is
    /// SQLite.
    pub fn parse(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DatabaseUrl::Postgres(url.to_owned())
        } else {
            DatabaseUrl::Sqlite(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)))
        }
    }

    /// The embedded default: `<data dir>/annotator.sqlite3`.
    pub fn default_for(data_dir: &Path) -> Self {
        DatabaseUrl::Sqlite(data_dir.join("annotator.sqlite3"))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            // Never print a password.
            DatabaseUrl::Postgres(url) => match url.split_once('@') {
                Some((_, host)) => write!(f, "postgres://***@{host}"),
                None => f.write_str(url),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database {url}: {message}")]
    Connect { url: String, message: String },
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Query(#[from] DieselError),
    #[error("no database connection available: {0}")]
    Pool(String),
    /// The batch this write was part of did not become durable: nothing of it was stored.
    #[error("database write not stored: {0}")]
    Commit(String),
}

impl DbError {
    /// The database could not grow: the disk is full, or SQLite's `max_page_count` was reached.
    /// Nothing of the failed write was stored, and the same write succeeds once space returns.
    pub fn is_full(&self) -> bool {
        let text = self.to_string();
        [
            "database or disk is full",
            "No space left on device",
            "could not extend file",
        ]
        .iter()
        .any(|m| text.contains(m))
    }

    /// A unique-index or serialization conflict: the transaction lost a race and may be retried.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
                _
            ))
        )
    }
}

impl RetryHint for DbError {
    fn retryable(&self) -> bool {
        self.is_conflict()
    }
}

/// Opens connections of the right kind: never guesses the backend from a failed attempt.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
    options: DbOptions,
}

/// How the database may be used beyond its URL.
#[derive(Clone, Default)]
pub struct DbOptions {
    /// SQLite: the most bytes the database file may hold (`PRAGMA max_page_count` on every
    /// connection). Past it a write fails as on a full disk (503, nothing stored), and succeeds
    /// again once pages are free. None: as large as the disk allows.
    pub sqlite_max_bytes: Option<u64>,
    /// SQLite: the VFS every connection opens the file through (a registered name); None: the
    /// default. The power-cut tests use it to put a simulated disk under SQLite.
    pub sqlite_vfs: Option<String>,
    /// SQLite: how the group commit makes its write-ahead log durable; None: `fdatasync`
    /// ([`wal_sync::FileSync`]). Tests substitute the simulated disk's sync.
    pub wal_sync: Option<wal_sync::WalSync>,
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("sqlite_max_bytes", &self.sqlite_max_bytes)
            .field("sqlite_vfs", &self.sqlite_vfs)
            .field("wal_sync", &self.wal_sync.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// `file:` URI of a SQLite database opened through the VFS `vfs` (`?`, `#` and `%` escaped).
fn sqlite_uri(path: &Path, vfs: &str) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?vfs=");
    uri.push_str(vfs);
    uri
}

impl ManageConnection for Manager {
    type Connection = Db;
    type Error = DbError;

    fn connect(&self) -> Result<Db, DbError> {
        let fail = |e: diesel::ConnectionError| DbError::Connect {
            url: self.url.to_string(),
            message: e.to_string(),
        };
        match &self.url {
            #[cfg(feature = "postgres")]
            DatabaseUrl::Postgres(url) => PgConnection::establish(url).map(Db::Pg).map_err(fail),
            #[cfg(not(feature = "postgres"))]
            DatabaseUrl::Postgres(_) => Err(DbError::Connect {
                url: self.url.to_string(),
                message: NO_POSTGRES.to_owned(),
            }),
            DatabaseUrl::Sqlite(path) => {
                let target = match &self.options.sqlite_vfs {
                    Some(vfs) => sqlite_uri(path, vfs),
                    None => path.to_string_lossy().into_owned(),
                };
                let mut conn = SqliteConnection::establish(&target).map_err(fail)?;
                conn.batch_execute(
                    // busy_timeout first: setting the journal mode takes a lock, which
                    // another connection's write transaction may hold at that moment.
                    // temp_store: the group commit's savepoints keep their undo pages in a
                    // sub-journal, in memory rather than in a temporary file (a pwrite each).
                    "PRAGMA busy_timeout = 30000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA temp_store = MEMORY;",
                )
                .map_err(DbError::Query)?;
                if let Some(max) = self.options.sqlite_max_bytes {
                    // The default page size (4 KiB) is what every database here is made with.
                    let pages = max.div_ceil(4096).max(1);
                    conn.batch_execute(&format!("PRAGMA max_page_count = {pages};"))
                        .map_err(DbError::Query)?;
                }
                Ok(Db::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut Db) -> Result<(), DbError> {
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .map(|_| ())
            .map_err(DbError::Query)
    }

    /// A connection given back while its thread panics may be inside a transaction that nobody
    /// will finish; on SQLite that transaction holds the write lock (BEGIN IMMEDIATE), on
    /// PostgreSQL its row locks. The pool then closes it instead of lending it again, and closing
    /// rolls the transaction back.
    fn has_broken(&self, _conn: &mut Db) -> bool {
        std::thread::panicking()
    }
}

/// A pool of connections to one database. On SQLite, writes go through one connection that
/// commits them in batches ([`GroupCommit`]) and reads have a pool of their own: in WAL mode a
/// reader never waits for the writer.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Manager>,
    read_pool: Option<r2d2::Pool<Manager>>,
    writer: Option<Arc<GroupCommit>>,
    url: DatabaseUrl,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.url.to_string())
            .finish()
    }
}

pub type Conn = PooledConnection<Manager>;

impl Database {
    /// Connects (creating the SQLite file and its folder if needed) and runs pending migrations.
    pub fn open(url: &DatabaseUrl) -> Result<Database, DbError> {
        Database::open_with(url, DbOptions::default())
    }

    /// [`Database::open`] with options.
    pub fn open_with(url: &DatabaseUrl, options: DbOptions) -> Result<Database, DbError> {
        if let DatabaseUrl::Sqlite(path) = url
            && let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Connect {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        }
        // Check once by hand so that a wrong URL reads as the backend's own message.
        let wal_sync = options.wal_sync.clone();
        let manager = Manager {
            url: url.clone(),
            options,
        };
        let mut first = manager.connect()?;
        migrate(&mut first)?;
        let build = |manager: Manager, size: u32| {
            r2d2::Pool::builder()
                .max_size(size)
                .connection_timeout(Duration::from_secs(30))
                .build(manager)
                .map_err(|e| DbError::Pool(e.to_string()))
        };
        if url.is_postgres() {
            drop(first);
            return Ok(Database {
                pool: build(manager, 16)?,
                read_pool: None,
                writer: None,
                url: url.clone(),
            });
        }
        let DatabaseUrl::Sqlite(path) = url else {
            unreachable!("PostgreSQL returned above")
        };
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let writer = GroupCommit::new(
            first,
            wal.into(),
            wal_sync.unwrap_or_else(wal_sync::FileSync::shared),
        )?;
        Ok(Database {
            // Writes outside the group commit (`conn`): tools and tests, not the server.
            pool: build(manager.clone(), 2)?,
            read_pool: Some(build(manager, 8)?),
            writer: Some(Arc::new(writer)),
            url: url.clone(),
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A connection of its own, outside the group commit: for tools and tests that need one.
    /// Its writes on SQLite wait for the writer's batch (the busy timeout), not the reverse.
    pub fn conn(&self) -> Result<Conn, DbError> {
        self.pool.get().map_err(|e| DbError::Pool(e.to_string()))
    }

    /// The group commit's counters (SQLite only).
    pub fn commit_stats(&self) -> Option<group_commit::CommitStats> {
        self.writer.as_ref().map(|w| w.stats())
    }

    /// Runs `f` in a write transaction, retrying it when it loses a race on a unique index or a
    /// serialization check, and returns once its effects are durable. On SQLite `f` is one
    /// request of a group commit (a savepoint of a batch transaction; see [`group_commit`]).
    /// `f` must be safe to run again: it sees none of the rolled-back attempt.
    pub fn write<T, E>(&self, mut f: impl FnMut(&mut Db) -> Result<T, E> + Send) -> Result<T, E>
    where
        T: Send,
        E: From<DbError> + RetryHint + std::fmt::Display + Send,
    {
        if let Some(writer) = &self.writer {
            return writer.write(f);
        }
        let mut conn = self.conn()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = transaction(&mut conn, &mut f);
            match result {
                Err(e) if e.retryable() && attempt < 50 => {
                    // Back off with jitter so that the racers do not meet again.
                    let jitter = rand::random_range(0..=attempt.min(20) * 2);
                    std::thread::sleep(Duration::from_millis(1 + jitter));
                }
                other => {
                    if other.is_ok() {
                        crate::telemetry::global().wrote(crate::domain::now_ms());
                    }
                    return other;
                }
            }
        }
    }

    /// Runs `f` in a read transaction (a consistent snapshot), and returns once what it saw is
    /// durable.
    pub fn read<T, E>(&self, f: impl FnOnce(&mut Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let result = self.read_unsynced(f);
        if let Some(writer) = &self.writer {
            // The snapshot may hold a batch that is committed but not yet synced: answer only
            // once it is durable (see `wal_sync`).
            writer.wait_for_readers().map_err(E::from)?;
        }
        result
    }

    /// [`Database::read`] without waiting for the log's sync: only for a read whose result can
    /// reveal no write before that write is durable. A session check is one: a client knows a
    /// token only from the answer that created it, which waited for its sync, and a check that
    /// finds a session revoked by a batch not yet durable only refuses.
    pub fn read_unsynced<T, E>(&self, f: impl FnOnce(&mut Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        assert!(
            !group_commit::on_writer_thread(),
            "Database::read called inside a write: read through the write's own connection"
        );
        let mut conn = self
            .read_pool
            .as_ref()
            .unwrap_or(&self.pool)
            .get()
            .map_err(|e| DbError::Pool(e.to_string()))?;
        conn.transaction(|c| f(c).map_err(TxError::Inner))
            .map_err(|e: TxError<E>| match e {
                TxError::Inner(e) => e,
                TxError::Db(e) => E::from(DbError::Query(e)),
            })
    }
}

/// Whether an error is a lost race that a fresh attempt may win.
pub trait RetryHint {
    fn retryable(&self) -> bool;
}

enum TxError<E> {
    Inner(E),
    Db(DieselError),
}

impl<E> From<DieselError> for TxError<E> {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

/// A PostgreSQL transaction (SQLite's writes all go through the group commit).
fn transaction<T, E>(conn: &mut Db, f: &mut impl FnMut(&mut Db) -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    conn.transaction(|c| f(c).map_err(TxError::Inner))
        .map_err(|e| match e {
            TxError::Inner(e) => e,
            TxError::Db(e) => E::from(DbError::Query(e)),
        })
}

/// The PostgreSQL advisory lock key under which migrations run ("milan-rs" in ASCII).
#[cfg(feature = "postgres")]
const MIGRATION_LOCK: i64 = 0x6d69_6c61_6e2d_7273;

/// Runs the pending migrations of the connection's backend. On PostgreSQL they run under a
/// session advisory lock, so that several servers starting at once on one database migrate it
/// one after the other (the later ones find nothing pending) instead of racing.
pub fn migrate(conn: &mut Db) -> Result<Vec<String>, DbError> {
    fn names<V: ToString>(
        applied: diesel::migration::Result<Vec<V>>,
    ) -> Result<Vec<String>, DbError> {
        applied
            .map(|v| v.iter().map(ToString::to_string).collect())
            .map_err(|e| DbError::Migration(e.to_string()))
    }
    match conn {
        Db::Sqlite(c) => names(c.run_pending_migrations(SQLITE_MIGRATIONS)),
        #[cfg(feature = "postgres")]
        Db::Pg(c) => {
            let lock = |c: &mut PgConnection, sql: &str| {
                diesel::sql_query(format!("{sql}({MIGRATION_LOCK})"))
                    .execute(c)
                    .map_err(|e| DbError::Migration(format!("{sql}: {e}")))
            };
            lock(c, "SELECT pg_advisory_lock")?;
            let applied = names(c.run_pending_migrations(POSTGRES_MIGRATIONS));
            lock(c, "SELECT pg_advisory_unlock")?;
            applied
        }
    }
}

/// One connection to `url` with the schema as it stands, nothing migrated: for `annotator migrate
/// --check` and the upgrade tests. `None` for a SQLite file that does not exist yet (opening it
/// would create it).
pub fn connect_as_is(url: &DatabaseUrl) -> Result<Option<Db>, DbError> {
    if let DatabaseUrl::Sqlite(path) = url
        && !path.exists()
    {
        return Ok(None);
    }
    Manager {
        url: url.clone(),
        options: DbOptions::default(),
    }
    .connect()
    .map(Some)
}

/// Every migration this build holds, oldest first (the same names on both backends).
pub fn migration_names(postgres: bool) -> Vec<String> {
    use diesel::migration::MigrationSource;
    #[cfg(feature = "postgres")]
    if postgres {
        return MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
            .unwrap_or_default()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
    }
    // A build without PostgreSQL holds its migrations' names all the same: the two folders have
    // the same names (tested below).
    let _ = postgres;
    {
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .unwrap_or_default()
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    }
}

/// The migrations not yet applied to this database, oldest first; nothing is changed.
pub fn pending_migrations(conn: &mut Db) -> Result<Vec<String>, DbError> {
    let pending: diesel::migration::Result<Vec<String>> = match conn {
        Db::Sqlite(c) => c
            .pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.name().to_string()).collect()),
        #[cfg(feature = "postgres")]
        Db::Pg(c) => c
            .pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.name().to_string()).collect()),
    };
    pending.map_err(|e| DbError::Migration(e.to_string()))
}

/// Applies at most `n` pending migrations, oldest first (the upgrade tests build a database of
/// each earlier schema version with it). Returns their names.
pub fn migrate_steps(conn: &mut Db, n: usize) -> Result<Vec<String>, DbError> {
    let mut pending = pending_migrations(conn)?;
    pending.truncate(n);
    for _ in &pending {
        let ran = match conn {
            Db::Sqlite(c) => c.run_next_migration(SQLITE_MIGRATIONS).map(|_| ()),
            #[cfg(feature = "postgres")]
            Db::Pg(c) => c.run_next_migration(POSTGRES_MIGRATIONS).map(|_| ()),
        };
        ran.map_err(|e| DbError::Migration(e.to_string()))?;
    }
    Ok(pending)
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    /// `migration_names` of a build without PostgreSQL answers with SQLite's names for both.
    #[test]
    fn both_backends_have_the_same_migrations() {
        let sqlite = super::migration_names(false);
        assert!(sqlite.len() >= 3, "{sqlite:?}");
        assert_eq!(super::migration_names(true), sqlite);
    }
}
