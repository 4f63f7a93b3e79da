//! Group commit on SQLite: many write requests, one transaction, and the disk sync off the
//! writer's path.
//!
//! SQLite admits one writer at a time. Opening a transaction per request over a pool of
//! connections (`BEGIN IMMEDIATE` each) makes the requests wait for each other in SQLite's busy
//! handler, which sleeps in growing steps instead of queueing: measured, 8 threads asleep and under
//! 2 running while the machine sat 80% idle.
//!
//! Here one connection, owned by one thread (the *writer*), does every write. A request queues its
//! closure and sleeps; the writer takes the queued requests one after another, each inside a
//! savepoint of the *batch* transaction (released on success, rolled back on failure, so one failed
//! request never aborts its neighbours), and when the queue is empty (or the batch full) commits:
//! one `COMMIT` for every request since the batch began. Running them on one thread, back to back,
//! keeps thread switches out of the writer's critical section: a request costs its caller one
//! sleep and one wake-up. The connection runs at `synchronous = NORMAL`, so the `COMMIT` does not
//! wait for the disk; the [`Syncer`] thread syncs the log while the writer goes on with the next
//! batch, and wakes each member once a sync begun after its `COMMIT` has finished. So an answer —
//! success or refusal — is given only once the state it was computed from is durable (the argument
//! is in [`super::wal_sync`]). A batch whose commit fails fails all its members, and none is
//! acknowledged.
//!
//! Within a batch the requests run one after another and each sees the changes of those before
//! it, exactly as if each had been a transaction of its own committed in that order; readers
//! (their own connections, WAL snapshots) see whole batches or nothing and never wait for the
//! writer, only (in [`super::Database::read`]) for the sync of what they saw.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;

use super::prepared::{Sql, native};
use super::wal_sync::{Completion, Syncer, WalSync};
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
    /// Whether this thread is the writer (a write from inside a write would wait for itself).
    static IN_WRITE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is the writer, running a request: a read from here would not see the
/// batch's own changes, and a write would wait for itself.
pub fn on_writer_thread() -> bool {
    IN_WRITE.get()
}

/// How one run of a request's closure ended, as the writer needs to know it (the value itself
/// goes straight to the caller's slot).
enum Status {
    Done,
    Failed { retryable: bool, message: String },
}

/// A queued request: its closure (which writes its result into its caller's slot) and how the
/// caller is woken.
struct Job {
    run: Box<dyn FnMut(&mut Db) -> Status + Send + 'static>,
    completion: Arc<Completion>,
}

impl Job {
    /// Fails a request that was not run, dropping its closure first (see `write`).
    fn refuse(self, why: String) {
        let Job { run, completion } = self;
        drop(run);
        completion.complete(Err(why));
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// The writer sleeps, waiting for a request.
    idle: bool,
    stopping: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    /// Wakes the writer.
    arrived: Condvar,
    syncer: Syncer,
    commits: AtomicU64,
    requests: AtomicU64,
    failed: AtomicU64,
}

impl Inner {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next request; with `wait`, sleeps until one comes (None: the server is stopping).
    fn next(&self, wait: bool) -> Option<Job> {
        let mut q = self.queue();
        while wait && q.jobs.is_empty() && !q.stopping {
            q.idle = true;
            q = self.arrived.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        q.idle = false;
        q.jobs.pop_front()
    }
}

/// The single SQLite writer.
pub struct GroupCommit {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The batch transaction is gone, and why.
struct BatchLost(String);

impl From<diesel::result::Error> for BatchLost {
    fn from(e: diesel::result::Error) -> Self {
        BatchLost(e.to_string())
    }
}

impl GroupCommit {
    /// `conn` must be a SQLite connection with the server's pragmas set, on the database whose
    /// write-ahead log is `wal`; `sync` makes that log durable.
    pub fn new(mut conn: Db, wal: std::path::PathBuf, sync: WalSync) -> Result<Self, DbError> {
        // The commit no longer syncs: the syncer does, outside the writer (see `wal_sync`). At
        // NORMAL, SQLite still syncs around checkpoints and when it reuses the log.
        conn.batch_execute("PRAGMA synchronous = NORMAL")
            .map_err(DbError::Query)?;
        let inner = Arc::new(Inner {
            queue: Mutex::default(),
            arrived: Condvar::new(),
            syncer: Syncer::start(wal, sync),
            commits: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let thread = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || writer(&inner, conn))
                .map_err(|e| DbError::Pool(format!("start the SQLite writer: {e}")))?
        };
        Ok(GroupCommit {
            inner,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.inner.commits.load(Ordering::Relaxed),
            requests: self.inner.requests.load(Ordering::Relaxed),
            failed: self.inner.failed.load(Ordering::Relaxed),
            waiting: self.inner.queue().jobs.len(),
            syncs: self.inner.syncer.syncs(),
        }
    }

    /// Runs `f` as one request of the current batch (on the writer's thread) and returns its
    /// result once the batch is durable. `f` must be safe to run again (it is, when it loses a
    /// race on a unique index).
    pub fn write<T, E>(&self, mut f: impl FnMut(&mut Db) -> Result<T, E> + Send) -> Result<T, E>
    where
        T: Send,
        E: From<DbError> + RetryHint + std::fmt::Display + Send,
    {
        // A write inside a write would wait for itself forever: say so instead.
        assert!(
            !IN_WRITE.get(),
            "Database::write called inside a write: the writer is one connection"
        );
        if let Some(why) = self.inner.syncer.broken() {
            return Err(E::from(DbError::Commit(why)));
        }
        let mut slot: Option<Result<T, E>> = None;
        let completion = Arc::new(Completion::default());
        {
            let slot = &mut slot;
            let run: Box<dyn FnMut(&mut Db) -> Status + Send + '_> =
                Box::new(move |conn: &mut Db| match f(conn) {
                    Ok(value) => {
                        *slot = Some(Ok(value));
                        Status::Done
                    }
                    Err(e) => {
                        let status = Status::Failed {
                            retryable: e.retryable(),
                            message: e.to_string(),
                        };
                        *slot = Some(Err(e));
                        status
                    }
                });
            // SAFETY: the closure borrows `f` and `slot` from this frame, which outlives it: the
            // writer drops every job before it completes it (`writer` below, panics included),
            // and this function returns (or unwinds) only after `completion.wait()`, which
            // returns only once the job is complete. So no borrow outlives its referent.
            let run: Box<dyn FnMut(&mut Db) -> Status + Send + 'static> =
                unsafe { std::mem::transmute(run) };
            let mut q = self.inner.queue();
            q.jobs.push_back(Job {
                run,
                completion: Arc::clone(&completion),
            });
            let wake = q.idle;
            drop(q);
            if wake {
                self.inner.arrived.notify_one();
            }
        }
        let outcome = completion.wait();
        if let Some(payload) = completion.take_panic() {
            resume_unwind(payload);
        }
        match outcome {
            Ok(()) => match slot {
                Some(result) => result,
                None => Err(E::from(DbError::Commit(
                    "the writer completed a request it did not run".into(),
                ))),
            },
            Err(message) => Err(E::from(DbError::Commit(message))),
        }
    }

    /// Waits until everything a read that ends now may have seen is durable.
    pub fn wait_for_readers(&self) -> Result<(), DbError> {
        self.inner.syncer.wait_for_begun().map_err(DbError::Commit)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.inner.queue().stopping = true;
        self.inner.arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer's thread: batches until the server stops.
fn writer(inner: &Inner, mut conn: Db) {
    IN_WRITE.set(true);
    // The members of the batch in flight, kept outside the batch's `catch_unwind` so that a
    // panic in the writer's own bookkeeping still fails them instead of leaving them asleep.
    let mut members: Vec<Arc<Completion>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = inner.next(true) {
        let ran = catch_unwind(AssertUnwindSafe(|| {
            batch(inner, &mut conn, first, &mut members)
        }));
        if ran.is_err() {
            let _ = conn.batch_execute("ROLLBACK");
            inner.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("the SQLite writer panicked during a batch; its writes are lost");
            for c in members.drain(..) {
                c.complete(Err("the writer panicked during the batch".into()));
            }
        }
    }
}

/// One batch, from `first` until the queue is empty or the batch full.
fn batch(inner: &Inner, conn: &mut Db, first: Job, members: &mut Vec<Arc<Completion>>) {
    // After a failed sync nothing more is committed: requests queued before it are refused too.
    if let Some(why) = inner.syncer.broken() {
        first.refuse(why);
        return;
    }
    // IMMEDIATE: take the write lock now (another process, e.g. `annotator import`, may hold
    // it; the busy timeout waits for it).
    if let Err(e) = statement(conn, "BEGIN IMMEDIATE") {
        first.refuse(format!("could not begin a write: {e}"));
        return;
    }
    let mut next = Some(first);
    let mut lost = None;
    while let Some(job) = next.take() {
        let Job {
            mut run,
            completion,
        } = job;
        members.push(Arc::clone(&completion));
        let result = run_in_savepoint(conn, &mut run, &completion);
        // Dropped before it is completed: the caller's borrows end here (see `write`).
        drop(run);
        if let Err(BatchLost(why)) = result {
            lost = Some(why);
            break;
        }
        if members.len() < MAX_BATCH {
            next = inner.next(false);
        }
    }
    if let Some(why) = lost {
        // The batch transaction itself is gone (SQLite rolls back the whole transaction on some
        // errors, e.g. a full disk): nobody in it may be acknowledged.
        let _ = conn.batch_execute("ROLLBACK");
        inner.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!("a batch of {} writes was lost: {why}", members.len());
        for c in members.drain(..) {
            c.complete(Err(why.clone()));
        }
        return;
    }
    let started = std::time::Instant::now();
    let seq = inner.syncer.begin();
    let committed = statement(conn, "COMMIT");
    match committed {
        Ok(()) => {
            crate::telemetry::global().batch(members.len(), started.elapsed().as_secs_f64());
            inner.commits.fetch_add(1, Ordering::Relaxed);
            inner
                .requests
                .fetch_add(members.len() as u64, Ordering::Relaxed);
            inner.syncer.ended(seq, std::mem::take(members));
        }
        Err(e) => {
            inner.syncer.ended(seq, Vec::new());
            let _ = conn.batch_execute("ROLLBACK");
            inner.failed.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::global().commit_failures.inc();
            tracing::error!("a batch of {} writes failed to commit: {e}", members.len());
            for c in members.drain(..) {
                c.complete(Err(format!("commit failed: {e}")));
            }
        }
    }
}

/// Runs one of the statements every batch or request begins or ends with, kept prepared:
/// `batch_execute` would parse it again each time (a few per cent of the writer's time).
fn statement(conn: &mut Db, sql: &'static str) -> diesel::QueryResult<()> {
    native!(conn, |c| Sql(sql).execute(c)).map(|_| ())
}

/// Runs a request in a savepoint, again when it lost a race; `Err` when the batch's transaction
/// no longer exists. A panic is rolled back and handed to the caller.
fn run_in_savepoint(
    conn: &mut Db,
    run: &mut Box<dyn FnMut(&mut Db) -> Status + Send + 'static>,
    completion: &Completion,
) -> Result<(), BatchLost> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        statement(conn, "SAVEPOINT request")?;
        let ran: Result<Status, Box<dyn Any + Send>> = catch_unwind(AssertUnwindSafe(|| run(conn)));
        match ran {
            Ok(Status::Done) => {
                statement(conn, "RELEASE request")?;
                return Ok(());
            }
            Ok(Status::Failed { retryable, message }) => {
                if let Err(gone) = conn.batch_execute("ROLLBACK TO request; RELEASE request") {
                    // SQLite rolled the whole transaction back (a full disk does): say why, so
                    // that every member of the batch learns the cause, not just the symptom.
                    return Err(BatchLost(format!(
                        "{message} (the batch was rolled back: {gone})"
                    )));
                }
                if retryable && attempt < ATTEMPTS {
                    continue;
                }
                return Ok(());
            }
            Err(payload) => {
                conn.batch_execute("ROLLBACK TO request; RELEASE request")?;
                // The batch goes on; the caller re-raises the panic once the batch is durable.
                completion.set_panic(payload);
                return Ok(());
            }
        }
    }
}
