//! Group commit on SQLite: many write requests, one transaction, and the disk sync off the
//! writer's path.
//!
//! SQLite admits one writer at a time. Opening a transaction per request over a pool of
//! connections (`BEGIN IMMEDIATE` each) makes the requests wait for each other in SQLite's busy
//! handler, which sleeps in growing steps instead of queueing: measured, 8 threads asleep and under
//! 2 running while the machine sat 80% idle.
//!
//! Here one connection does every write. A request queues on a mutex, and when it gets the
//! connection it runs on its own thread (so its closure may borrow from the caller) inside a
//! savepoint of the *batch* transaction: on success the savepoint is released, on failure rolled
//! back, so one failed request never aborts its neighbours. The request that finds nobody else
//! queued behind it (or the batch full) commits: one `COMMIT` for every request that ran since the
//! batch began. The connection runs at `synchronous = NORMAL`, so the `COMMIT` does not wait for
//! the disk; the [`Syncer`] thread syncs the log while the writer goes on with the next batch.
//! Every member of a batch waits until a sync begun after its `COMMIT` has finished, so an answer
//! — success or refusal — is given only once the state it was computed from is durable (the
//! argument is in [`super::wal_sync`]). A batch whose commit fails fails all its members, and none
//! is acknowledged.
//!
//! Within a batch the requests run one after another and each sees the changes of those before
//! it, exactly as if each had been a transaction of its own committed in that order; readers
//! (their own connections, WAL snapshots) see whole batches or nothing and never wait for the
//! writer, only (in [`super::Database::read`]) for the sync of what they saw.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use diesel::connection::SimpleConnection;

use super::wal_sync::{Syncer, WalSync};
use super::{Db, DbError, RetryHint};

/// At most this many requests share one commit: bounds the wait of the batch's first member
/// under constant load. (A member waits for its commit before its caller can send another
/// request, so a batch never holds more requests than there are concurrent callers either.)
/// A commit costs about as much as one request's work, so 64 gets nearly all of the gain.
pub const MAX_BATCH: usize = 64;
/// A request that lost a race on a unique index is run again this many times at most (within a
/// batch the requests are serial, so a second loss is not a race but a bug, and is reported).
const ATTEMPTS: u32 = 3;

/// Counters of the writer since it started, for benchmarks and the closing of a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Batches committed.
    pub commits: u64,
    /// Requests in those batches.
    pub requests: u64,
    /// Batches whose commit failed (every member got an error).
    pub failed: u64,
    /// Requests waiting for the writer now.
    pub waiting: usize,
    /// Syncs of the write-ahead log (each covers every batch committed before it began).
    pub syncs: u64,
}

thread_local! {
    /// Whether this thread is running a request inside the writer.
    static IN_WRITE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The single SQLite writer.
pub struct GroupCommit {
    writer: Mutex<Writer>,
    syncer: Syncer,
    /// Requests waiting for the writer: the one that finds none behind it commits.
    queued: AtomicUsize,
    commits: AtomicU64,
    requests: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Writer {
    conn: Db,
    batch: Option<Batch>,
}

struct Batch {
    outcome: Arc<Outcome>,
    members: usize,
}

/// How a batch's `COMMIT` ended: its number for the syncer, or why it failed.
#[derive(Default)]
struct Outcome {
    result: Mutex<Option<Result<u64, String>>>,
    done: Condvar,
}

impl Outcome {
    fn set(&self, result: Result<u64, String>) {
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        self.done.notify_all();
    }

    fn wait(&self) -> Result<u64, String> {
        let mut result = self.result.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = result.as_ref() {
                return r.clone();
            }
            result = self.done.wait(result).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What one request's closure ended with.
/// The batch's transaction is gone, and why.
struct BatchLost(String);

impl From<diesel::result::Error> for BatchLost {
    fn from(e: diesel::result::Error) -> Self {
        BatchLost(e.to_string())
    }
}

enum Ran<T, E> {
    Value(Result<T, E>),
    Panicked(Box<dyn Any + Send>),
}

impl GroupCommit {
    /// `conn` must be a SQLite connection with the server's pragmas set, on the database whose
    /// write-ahead log is `wal`; `sync` makes that log durable.
    pub fn new(mut conn: Db, wal: std::path::PathBuf, sync: WalSync) -> Result<Self, DbError> {
        // The commit no longer syncs: the syncer does, outside the writer (see `wal_sync`). At
        // NORMAL, SQLite still syncs around checkpoints and when it reuses the log.
        conn.batch_execute("PRAGMA synchronous = NORMAL")
            .map_err(DbError::Query)?;
        Ok(GroupCommit {
            writer: Mutex::new(Writer { conn, batch: None }),
            syncer: Syncer::start(wal, sync),
            queued: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            waiting: self.queued.load(Ordering::SeqCst),
            syncs: self.syncer.syncs(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|poisoned| {
            // Only our own bookkeeping runs outside `catch_unwind` while the lock is held; if it
            // panicked, the batch in flight is in an unknown state: end it, failing its members.
            let mut w = poisoned.into_inner();
            if w.batch.is_some() {
                self.abort(&mut w, "the writer panicked during the batch".into());
            }
            w
        })
    }

    /// Runs `f` as one request of the current batch and returns its result once the batch is
    /// durable. `f` must be safe to run again (it is, when it loses a race on a unique index).
    pub fn write<T, E>(&self, mut f: impl FnMut(&mut Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError> + RetryHint + std::fmt::Display,
    {
        // A write inside a write would wait for itself forever: say so instead.
        assert!(
            !IN_WRITE.get(),
            "Database::write called inside a write: the writer is one connection"
        );
        if let Some(why) = self.syncer.broken() {
            return Err(E::from(DbError::Commit(why)));
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut w = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if w.batch.is_none() {
            // IMMEDIATE: take the write lock now (another process, e.g. `annotator import`, may
            // hold it; the busy timeout waits for it).
            w.conn
                .batch_execute("BEGIN IMMEDIATE")
                .map_err(|e| E::from(DbError::Query(e)))?;
            w.batch = Some(Batch {
                outcome: Arc::default(),
                members: 0,
            });
        }
        let ran = match self.run_in_savepoint(&mut w, &mut f) {
            Ok(ran) => ran,
            Err(broken) => {
                // The batch transaction itself is gone (SQLite rolls back the whole transaction
                // on some errors, e.g. a full disk): nobody in it may be acknowledged.
                let message = broken.0;
                self.abort(&mut w, message.clone());
                return Err(E::from(DbError::Commit(message)));
            }
        };
        let batch = w.batch.as_mut().expect("a batch is open");
        batch.members += 1;
        let outcome = Arc::clone(&batch.outcome);
        let last = self.queued.load(Ordering::SeqCst) == 0 || batch.members >= MAX_BATCH;
        if last {
            self.commit(&mut w);
        }
        drop(w);
        let result = match ran {
            Ran::Value(result) => result,
            // The batch is not left hanging on a panicking request: it was committed above if
            // this request was the last, or will be by the next.
            Ran::Panicked(payload) => resume_unwind(payload),
        };
        let durable = outcome.wait().and_then(|seq| self.syncer.wait_durable(seq));
        match durable {
            Ok(()) => result,
            Err(message) => Err(E::from(DbError::Commit(message))),
        }
    }

    /// Waits until everything a read that ends now may have seen is durable.
    pub fn wait_for_readers(&self) -> Result<(), DbError> {
        self.syncer.wait_for_begun().map_err(DbError::Commit)
    }

    /// Runs `f` in a savepoint, again when it lost a race; `Err` when the batch's transaction
    /// no longer exists.
    fn run_in_savepoint<T, E>(
        &self,
        w: &mut Writer,
        f: &mut impl FnMut(&mut Db) -> Result<T, E>,
    ) -> Result<Ran<T, E>, BatchLost>
    where
        E: RetryHint + std::fmt::Display,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            w.conn.batch_execute("SAVEPOINT request")?;
            IN_WRITE.set(true);
            let ran = catch_unwind(AssertUnwindSafe(|| f(&mut w.conn)));
            IN_WRITE.set(false);
            match ran {
                Ok(Ok(value)) => {
                    w.conn.batch_execute("RELEASE request")?;
                    return Ok(Ran::Value(Ok(value)));
                }
                Ok(Err(e)) => {
                    if let Err(gone) = w.conn.batch_execute("ROLLBACK TO request; RELEASE request")
                    {
                        // SQLite rolled the whole transaction back (a full disk does): say why,
                        // so that every member of the batch learns the cause, not just the symptom.
                        return Err(BatchLost(format!(
                            "{e} (the batch was rolled back: {gone})"
                        )));
                    }
                    if e.retryable() && attempt < ATTEMPTS {
                        continue;
                    }
                    return Ok(Ran::Value(Err(e)));
                }
                Err(payload) => {
                    w.conn
                        .batch_execute("ROLLBACK TO request; RELEASE request")?;
                    return Ok(Ran::Panicked(payload));
                }
            }
        }
    }

    fn commit(&self, w: &mut Writer) {
        let batch = w.batch.take().expect("a batch is open");
        let started = std::time::Instant::now();
        let seq = self.syncer.begin();
        let committed = w.conn.batch_execute("COMMIT");
        self.syncer.ended(seq);
        match committed {
            Ok(()) => {
                crate::telemetry::global().batch(batch.members, started.elapsed().as_secs_f64());
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.requests
                    .fetch_add(batch.members as u64, Ordering::Relaxed);
                batch.outcome.set(Ok(seq));
            }
            Err(e) => {
                let _ = w.conn.batch_execute("ROLLBACK");
                self.failed.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::global().commit_failures.inc();
                tracing::error!("a batch of {} writes failed to commit: {e}", batch.members);
                batch.outcome.set(Err(format!("commit failed: {e}")));
            }
        }
    }

    fn abort(&self, w: &mut Writer, message: String) {
        if let Some(batch) = w.batch.take() {
            let _ = w.conn.batch_execute("ROLLBACK");
            self.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("a batch of {} writes was lost: {message}", batch.members);
            batch.outcome.set(Err(message));
        }
    }
}
