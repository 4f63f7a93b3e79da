//! Durability for the SQLite group commit, outside the writer's critical section.
//!
//! The writer's connection runs at `synchronous = NORMAL`: a `COMMIT` appends the batch's frames
//! to the write-ahead log and returns without waiting for the disk. This module's thread, the
//! *syncer*, then makes the log durable with `fdatasync`, while the writer goes on with the next
//! batch. Batches are numbered in commit order; a request is acknowledged only once a sync that
//! *began after its batch's `COMMIT` returned* has finished, so every byte of its batch was in the
//! file when that sync started. One sync covers every batch committed before it began, so under
//! load the syncs and the commits overlap instead of taking turns.
//!
//! Why nothing acknowledged is lost (the argument docs/performance.md states in full):
//! - `kill -9`: a returned `COMMIT` is in the kernel's page cache, which outlives the process.
//! - Power cut: an acknowledged batch's frames were written before a completed `fdatasync` of the
//!   log began. `fdatasync` flushes the file's data and size, whichever descriptor wrote them.
//!   The log file itself must survive too: the first sync of each log file also syncs its folder
//!   (SQLite does that for a log only at its own first sync of it, which at `NORMAL` may be late).
//! - Checkpoints: SQLite at `NORMAL` syncs the log before copying it into the database file and the
//!   database file before the log may be reused, and syncs a reused log's header before its new
//!   frames, so a batch whose frames were overwritten by a reused log is already in the synced
//!   database file, and a power cut never replays stale frames.
//! - A failed sync: after `fdatasync` reports an error the kernel may have dropped the dirty pages,
//!   so a later success proves nothing. The syncer stops for good: every request waiting and every
//!   later write fails (503) until the server restarts and SQLite recovers from what is on disk.
//!
//! Readers see a batch as soon as its `COMMIT` returns, a little before it is durable. So that no
//! answer depends on state a power cut could undo, a read waits until every batch whose `COMMIT`
//! had begun when the read ended is durable ([`Syncer::wait_for_begun`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Makes everything written to the write-ahead log so far durable. The default is [`FileSync`];
/// tests substitute a simulated disk.
pub type WalSync = Arc<dyn Fn(&Path) -> std::io::Result<()> + Send + Sync>;

/// The default [`WalSync`]: `fdatasync` of the log, and of its folder the first time a log file
/// is seen, so that a new log's directory entry is durable too.
///
/// SQLite deletes the log only when the last connection to the database closes, which the
/// writer's connection prevents while the server runs; still, each sync checks that the file
/// it holds is the one the path names, and takes the new one (syncing the folder) if not. The
/// held descriptor keeps the old file's inode alive, so its number cannot be reused by the new
/// file and the comparison cannot be fooled.
#[derive(Debug, Default)]
pub struct FileSync {
    held: Mutex<Option<(std::fs::File, (u64, u64))>>,
}

impl FileSync {
    pub fn sync(&self, wal: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(wal)?;
        let named = (meta.dev(), meta.ino());
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let new_file = held.as_ref().is_none_or(|(_, id)| *id != named);
        if new_file {
            let file = std::fs::File::open(wal)?;
            let meta = file.metadata()?;
            *held = Some((file, (meta.dev(), meta.ino())));
        }
        let (file, _) = held.as_ref().expect("a log file is held");
        file.sync_data()?;
        if new_file {
            let dir = match wal.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// This sync as a [`WalSync`].
    pub fn shared() -> WalSync {
        let sync = FileSync::default();
        Arc::new(move |wal: &Path| sync.sync(wal))
    }
}

/// How a caller of the group commit learns its request's fate: `Ok` once durable, or why not;
/// and a panic of its closure, to raise again in its own thread.
#[derive(Default)]
pub struct Completion {
    result: Mutex<Option<Result<(), String>>>,
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    done: Condvar,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion").finish_non_exhaustive()
    }
}

impl Completion {
    pub fn complete(&self, result: Result<(), String>) {
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        self.done.notify_one();
    }

    /// Sleeps until [`Completion::complete`].
    pub fn wait(&self) -> Result<(), String> {
        let mut result = self.result.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = result.take() {
                return r;
            }
            result = self.done.wait(result).unwrap_or_else(|e| e.into_inner());
        }
    }

    pub fn set_panic(&self, payload: Box<dyn std::any::Any + Send>) {
        *self.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
    }

    pub fn take_panic(&self) -> Option<Box<dyn std::any::Any + Send>> {
        self.panic.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Batches whose `COMMIT` has begun (numbered from 1).
    begun: u64,
    /// Batches whose `COMMIT` has returned, committed or not.
    ended: u64,
    /// Every batch up to this one is durable.
    durable: u64,
    /// Why the log can no longer be made durable.
    broken: Option<String>,
    /// The members of committed batches not yet durable, oldest first, to wake when they are.
    members: VecDeque<(u64, Vec<Arc<Completion>>)>,
    stopping: bool,
    /// Syncs done, for the counters.
    syncs: u64,
}

/// The syncer thread and the sequence numbers requests wait on.
#[derive(Debug)]
pub struct Syncer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the syncer: a batch ended, or the server is stopping.
    work: Condvar,
    /// Wakes the waiters: a sync ended.
    synced: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Syncer {
    /// Starts the thread that syncs `wal` with `sync`.
    pub fn start(wal: PathBuf, sync: WalSync) -> Syncer {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("wal-sync".into())
                .spawn(move || run(&shared, &wal, &sync))
                .expect("start the WAL sync thread")
        };
        Syncer {
            shared,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Numbers the batch whose `COMMIT` the writer is about to run.
    pub fn begin(&self) -> u64 {
        let mut st = self.shared.lock();
        st.begun += 1;
        st.begun
    }

    /// The writer's `COMMIT` of batch `seq` returned (whether it committed or not); `members`
    /// are completed once it is durable (or failed if the log cannot be synced).
    pub fn ended(&self, seq: u64, members: Vec<Arc<Completion>>) {
        let mut st = self.shared.lock();
        debug_assert_eq!(st.ended + 1, seq, "batches end in the order they begin");
        st.ended = seq;
        if let Some(why) = &st.broken {
            for c in members {
                c.complete(Err(why.clone()));
            }
        } else if !members.is_empty() {
            st.members.push_back((seq, members));
        }
        drop(st);
        self.shared.work.notify_one();
    }

    /// Why writes must stop, once a sync has failed.
    pub fn broken(&self) -> Option<String> {
        self.shared.lock().broken.clone()
    }

    /// Waits until batch `seq` is durable.
    pub fn wait_durable(&self, seq: u64) -> Result<(), String> {
        let mut st = self.shared.lock();
        loop {
            if st.durable >= seq {
                return Ok(());
            }
            if let Some(why) = &st.broken {
                return Err(why.clone());
            }
            st = self
                .shared
                .synced
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until every batch whose `COMMIT` has begun by now is durable: what a read calls
    /// after its snapshot was taken, so that it never answers from state a power cut could undo.
    pub fn wait_for_begun(&self) -> Result<(), String> {
        let begun = self.shared.lock().begun;
        self.wait_durable(begun)
    }

    /// Syncs of the log so far.
    pub fn syncs(&self) -> u64 {
        self.shared.lock().syncs
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.work.notify_one();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, wal: &Path, sync: &WalSync) {
    let mut st = shared.lock();
    loop {
        while st.ended == st.durable && !st.stopping && st.broken.is_none() {
            st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.broken.is_some() || st.ended == st.durable {
            return;
        }
        // Everything up to `target` was written before this sync begins.
        let target = st.ended;
        drop(st);
        let started = std::time::Instant::now();
        let result = sync(wal);
        st = shared.lock();
        let mut woken = Vec::new();
        match result {
            Ok(()) => {
                st.durable = target;
                st.syncs += 1;
                crate::telemetry::global()
                    .wal_synced(started.elapsed().as_secs_f64(), crate::domain::now_ms());
                while st.members.front().is_some_and(|(seq, _)| *seq <= target) {
                    let (_, members) = st.members.pop_front().expect("checked");
                    woken.push(members);
                }
                drop(st);
                // Woken outside the lock: each wake-up is a system call.
                for c in woken.into_iter().flatten() {
                    c.complete(Ok(()));
                }
                st = shared.lock();
            }
            Err(e) => {
                let why = format!(
                    "the write-ahead log {} could not be synced ({e}); no write is accepted \
                     until the server restarts",
                    wal.display()
                );
                tracing::error!("{why}");
                for (_, members) in st.members.drain(..) {
                    for c in members {
                        c.complete(Err(why.clone()));
                    }
                }
                st.broken = Some(why);
            }
        }
        shared.synced.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    /// A sync that reports when it starts and waits for a go before it finishes.
    fn gated() -> (Syncer, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let started_tx = Mutex::new(started_tx);
        let syncer = Syncer::start(
            PathBuf::from("log"),
            Arc::new(move |_: &Path| {
                started_tx.lock().unwrap().send(()).unwrap();
                go_rx.lock().unwrap().recv().unwrap();
                Ok(())
            }),
        );
        (syncer, started_rx, go_tx)
    }

    fn durable(syncer: &Syncer) -> u64 {
        syncer.shared.lock().durable
    }

    #[test]
    fn a_batch_is_durable_only_after_a_sync_that_began_after_its_commit() {
        let (syncer, started, go) = gated();
        let first = syncer.begin();
        syncer.ended(first, Vec::new());
        started.recv().unwrap();
        // Batch 2 commits while the first sync runs: that sync does not cover it.
        let second = syncer.begin();
        syncer.ended(second, Vec::new());
        go.send(()).unwrap();
        started.recv().unwrap();
        syncer.wait_durable(first).unwrap();
        assert_eq!(
            durable(&syncer),
            1,
            "batch 2 counted durable by a sync begun before it"
        );
        go.send(()).unwrap();
        syncer.wait_durable(second).unwrap();
        assert_eq!(syncer.syncs(), 2);
    }

    #[test]
    fn one_sync_covers_every_batch_committed_before_it_began() {
        let (syncer, started, go) = gated();
        let first = syncer.begin();
        syncer.ended(first, Vec::new());
        started.recv().unwrap();
        let later: Vec<u64> = (0..5)
            .map(|_| {
                let seq = syncer.begin();
                syncer.ended(seq, Vec::new());
                seq
            })
            .collect();
        go.send(()).unwrap();
        started.recv().unwrap();
        go.send(()).unwrap();
        syncer.wait_durable(*later.last().unwrap()).unwrap();
        assert_eq!(syncer.syncs(), 2, "five batches, one sync");
    }

    #[test]
    fn members_are_woken_once_their_batch_is_durable() {
        let (syncer, started, go) = gated();
        let first = syncer.begin();
        let member = Arc::new(Completion::default());
        syncer.ended(first, vec![Arc::clone(&member)]);
        started.recv().unwrap();
        let waiter = {
            let member = Arc::clone(&member);
            std::thread::spawn(move || member.wait())
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished(), "woken before the sync ended");
        go.send(()).unwrap();
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn a_failed_sync_fails_every_waiter_and_stops_writes() {
        let calls = Arc::new(AtomicU64::new(0));
        let syncer = {
            let calls = Arc::clone(&calls);
            Syncer::start(
                PathBuf::from("log"),
                Arc::new(move |_: &Path| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(std::io::Error::other("EIO"))
                }),
            )
        };
        let seq = syncer.begin();
        let member = Arc::new(Completion::default());
        syncer.ended(seq, vec![Arc::clone(&member)]);
        let err = syncer.wait_durable(seq).unwrap_err();
        assert_eq!(member.wait().unwrap_err(), err, "the member learns why");
        assert!(err.contains("EIO") && err.contains("restarts"), "{err}");
        assert!(syncer.broken().is_some());
        // Nothing later is made durable, even if the disk seemed to recover.
        let later = syncer.begin();
        syncer.ended(later, Vec::new());
        assert!(syncer.wait_durable(later).is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn reads_wait_for_batches_whose_commit_has_begun() {
        let syncer = Arc::new(Syncer::start(
            PathBuf::from("log"),
            Arc::new(|_: &Path| Ok(())),
        ));
        let seq = syncer.begin();
        // The commit is running: a read that ends now must wait for it.
        let reader = {
            let syncer = Arc::clone(&syncer);
            std::thread::spawn(move || syncer.wait_for_begun())
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !reader.is_finished(),
            "the read returned before the batch was durable"
        );
        syncer.ended(seq, Vec::new());
        reader.join().unwrap().unwrap();
        assert_eq!(durable(&syncer), seq);
    }

    #[test]
    fn the_file_sync_syncs_a_real_log_and_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db.sqlite3-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let sync = FileSync::default();
        let held = |sync: &FileSync| sync.held.lock().unwrap().as_ref().map(|(_, id)| *id);
        sync.sync(&wal).unwrap();
        let first = held(&sync);
        assert!(first.is_some());
        sync.sync(&wal).unwrap();
        assert_eq!(held(&sync), first, "the same log is kept open");
        // A new log file is taken (and its folder synced), though created at once in its place.
        std::fs::remove_file(&wal).unwrap();
        std::fs::write(&wal, b"new frames").unwrap();
        sync.sync(&wal).unwrap();
        assert_ne!(held(&sync), first);
        let missing = sync.sync(&dir.path().join("absent-wal")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
