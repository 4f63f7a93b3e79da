//! A simulated disk under SQLite, for power-cut tests: a VFS that passes every call to the
//! platform's own and, for the files it watches, also records what a power cut would leave.
//!
//! The model: a file's bytes are durable once a sync of that file ends; writes and truncations
//! since its last sync are *pending*, and a power cut keeps none of them ([`Cut::Drop`]) or any
//! subset, in order ([`Cut::Some`]: a disk that reorders writes). A new file's directory entry is
//! durable once its folder is synced, as SQLite's unix VFS does on the first sync of a log or
//! journal it created, and as `FileSync` does for a new log. The shared-memory index (`-shm`) is
//! not a durable file (SQLite rebuilds it from the log after a crash) and is not recorded.
//!
//! The group commit's own sync of the log runs outside SQLite; tests pass [`sync_wal`] as its
//! `WalSync`, which does to the model what `FileSync` does to a real disk.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard, Once};

use libsqlite3_sys as ffi;

/// The name the VFS is registered under (`DbOptions::sqlite_vfs`).
pub const VFS: &str = "milan-sim-disk";

enum Op {
    Write(u64, Vec<u8>),
    Truncate(u64),
}

#[derive(Default)]
struct Record {
    durable: Vec<u8>,
    pending: Vec<Op>,
    /// Whether the directory entry survives a power cut.
    entry_durable: bool,
    syncs: u64,
    /// Writes at offset 0 of a log after its first: SQLite reusing the log after a checkpoint.
    restarts: u64,
    written_before: bool,
    /// The log's generation seen by the last `sync_wal` (a new file gets its folder synced).
    generation: u64,
    wal_sync_generation: Option<u64>,
}

impl Record {
    fn apply(bytes: &mut Vec<u8>, op: &Op) {
        match op {
            Op::Write(offset, data) => {
                let (start, end) = (*offset as usize, *offset as usize + data.len());
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[start..end].copy_from_slice(data);
            }
            Op::Truncate(len) => bytes.truncate(*len as usize),
        }
    }

    fn sync(&mut self) {
        for op in std::mem::take(&mut self.pending) {
            Self::apply(&mut self.durable, &op);
        }
        self.syncs += 1;
    }
}

static DISK: LazyLock<Mutex<HashMap<PathBuf, Record>>> = LazyLock::new(Mutex::default);
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn disk() -> MutexGuard<'static, HashMap<PathBuf, Record>> {
    DISK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A folder was synced: every file in it now has a durable entry.
fn sync_dir(disk: &mut HashMap<PathBuf, Record>, dir: &Path) {
    for (path, record) in disk.iter_mut() {
        if path.parent() == Some(dir) {
            record.entry_durable = true;
        }
    }
}

/// What a power cut leaves of the unsynced writes.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// Nothing.
    Drop,
    /// Each pending write or truncation independently, with this seed (kept in order).
    Some(u64),
}

/// What is on the disk of folder `dir` after a power cut now: (file name, bytes) of every file
/// whose entry is durable.
pub fn power_cut(dir: &Path, cut: Cut) -> Vec<(String, Vec<u8>)> {
    let disk = disk();
    let mut rng = match cut {
        Cut::Drop => None,
        Cut::Some(seed) => Some(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(
            seed,
        )),
    };
    let mut files = Vec::new();
    let mut paths: Vec<&PathBuf> = disk.keys().filter(|p| p.parent() == Some(dir)).collect();
    paths.sort();
    for path in paths {
        let record = &disk[path];
        if !record.entry_durable {
            continue;
        }
        let mut bytes = record.durable.clone();
        if let Some(rng) = rng.as_mut() {
            for op in &record.pending {
                if rand::Rng::random_bool(rng, 0.5) {
                    Record::apply(&mut bytes, op);
                }
            }
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.push((name, bytes));
    }
    files
}

/// Counters of one file: (syncs, log restarts).
pub fn counters(path: &Path) -> (u64, u64) {
    disk()
        .get(path)
        .map(|r| (r.syncs, r.restarts))
        .unwrap_or_default()
}

/// The group commit's log sync on the simulated disk: what `FileSync` does on a real one (the
/// log's pending writes become durable; the first time this log file is seen, its folder too).
pub fn sync_wal(wal: &Path) -> std::io::Result<()> {
    let mut disk = disk();
    let record = disk.get_mut(wal).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} not on the simulated disk", wal.display()),
        )
    })?;
    record.sync();
    let new_file = record.wal_sync_generation != Some(record.generation);
    record.wal_sync_generation = Some(record.generation);
    if new_file {
        sync_dir(&mut disk, wal.parent().unwrap());
    }
    Ok(())
}

/// Registers the VFS (once per process); only files under a folder passed to [`watch`] are
/// recorded, every other file goes straight through.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| unsafe {
        let base = ffi::sqlite3_vfs_find(std::ptr::null());
        assert!(!base.is_null(), "SQLite has a default VFS");
        let mut vfs: ffi::sqlite3_vfs = std::ptr::read(base);
        vfs.szOsFile = std::mem::size_of::<SimFile>() as c_int;
        vfs.pNext = std::ptr::null_mut();
        vfs.zName = CString::new(VFS).unwrap().into_raw();
        vfs.pAppData = base.cast();
        vfs.xOpen = Some(x_open);
        vfs.xDelete = Some(x_delete);
        let vfs = Box::into_raw(Box::new(vfs));
        assert_eq!(ffi::sqlite3_vfs_register(vfs, 0), ffi::SQLITE_OK);
    });
}

static WATCHED: LazyLock<Mutex<Vec<PathBuf>>> = LazyLock::new(Mutex::default);

/// Records the files of folder `dir` from now on.
pub fn watch(dir: &Path) {
    register();
    WATCHED
        .lock()
        .unwrap()
        .push(dir.canonicalize().expect("the folder exists"));
}

fn watched(path: &Path) -> bool {
    let watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    path.parent()
        .is_some_and(|dir| watched.iter().any(|w| w == dir))
}

/// One open file: the platform's file object, and what the model needs.
#[repr(C)]
struct SimFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Storage of `inner` (u64s, for its alignment).
    inner_storage: *mut Vec<u64>,
    /// Recorded as this path; None: not watched.
    path: *mut PathBuf,
    /// SQLite's unix VFS syncs the folder at the first sync of a log or journal it opened with
    /// SQLITE_OPEN_CREATE.
    dir_sync_pending: bool,
}

fn base_vfs(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    unsafe { (*vfs).pAppData.cast() }
}

fn recorded(file: *mut ffi::sqlite3_file) -> Option<&'static PathBuf> {
    unsafe {
        let sim = file.cast::<SimFile>();
        (*sim).path.as_ref()
    }
}

fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    unsafe { (*file.cast::<SimFile>()).inner }
}

fn methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    unsafe { &*(*inner(file)).pMethods }
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    unsafe {
        let base = base_vfs(vfs);
        let words = ((*base).szOsFile as usize).div_ceil(8);
        let storage = Box::into_raw(Box::new(vec![0u64; words]));
        let inner: *mut ffi::sqlite3_file = (*storage).as_mut_ptr().cast();
        let sim = file.cast::<SimFile>();
        (*sim).base.pMethods = std::ptr::null();
        let rc = ((*base).xOpen.unwrap())(base, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK || (*inner).pMethods.is_null() {
            drop(Box::from_raw(storage));
            return rc;
        }
        let path = if name.is_null() {
            None
        } else {
            Some(PathBuf::from(
                CStr::from_ptr(name as *const c_char)
                    .to_string_lossy()
                    .into_owned(),
            ))
        };
        let path = path.filter(|p| watched(p));
        if let Some(p) = &path {
            let mut disk = disk();
            let record = disk.entry(p.clone()).or_insert_with(|| Record {
                generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                ..Record::default()
            });
            // A file that existed before it was watched counts as durable as it stands.
            if record.syncs == 0
                && record.durable.is_empty()
                && record.pending.is_empty()
                && let Ok(bytes) = std::fs::read(p)
                && !bytes.is_empty()
            {
                record.durable = bytes;
                record.entry_durable = true;
            }
        }
        let journal =
            ffi::SQLITE_OPEN_WAL | ffi::SQLITE_OPEN_MAIN_JOURNAL | ffi::SQLITE_OPEN_SUPER_JOURNAL;
        std::ptr::write(
            sim,
            SimFile {
                base: ffi::sqlite3_file { pMethods: &METHODS },
                inner,
                inner_storage: storage,
                path: path.map_or(std::ptr::null_mut(), |p| Box::into_raw(Box::new(p))),
                dir_sync_pending: flags & ffi::SQLITE_OPEN_CREATE != 0 && flags & journal != 0,
            },
        );
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    unsafe {
        let base = base_vfs(vfs);
        let rc = ((*base).xDelete.unwrap())(base, name, sync_dir);
        if rc == ffi::SQLITE_OK && !name.is_null() {
            let path = PathBuf::from(CStr::from_ptr(name).to_string_lossy().into_owned());
            // The model keeps no deleted files: a deletion is taken as durable.
            disk().remove(&path);
        }
        rc
    }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let sim = file.cast::<SimFile>();
        let rc = (methods(file).xClose.unwrap())(inner(file));
        drop(Box::from_raw((*sim).inner_storage));
        if !(*sim).path.is_null() {
            drop(Box::from_raw((*sim).path));
        }
        (*sim).base.pMethods = std::ptr::null();
        rc
    }
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    unsafe { (methods(file).xRead.unwrap())(inner(file), buf, amount, offset) }
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    unsafe {
        let rc = (methods(file).xWrite.unwrap())(inner(file), buf, amount, offset);
        if rc == ffi::SQLITE_OK
            && let Some(path) = recorded(file)
        {
            let data = std::slice::from_raw_parts(buf.cast::<u8>(), amount as usize).to_vec();
            let mut disk = disk();
            if let Some(record) = disk.get_mut(path) {
                if offset == 0 && record.written_before && path.to_string_lossy().ends_with("-wal")
                {
                    record.restarts += 1;
                }
                record.written_before = true;
                record.pending.push(Op::Write(offset as u64, data));
            }
        }
        rc
    }
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    unsafe {
        let rc = (methods(file).xTruncate.unwrap())(inner(file), size);
        if rc == ffi::SQLITE_OK
            && let Some(path) = recorded(file)
            && let Some(record) = disk().get_mut(path)
        {
            record.pending.push(Op::Truncate(size as u64));
        }
        rc
    }
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    unsafe {
        let rc = (methods(file).xSync.unwrap())(inner(file), flags);
        if rc == ffi::SQLITE_OK
            && let Some(path) = recorded(file)
        {
            let mut disk = disk();
            if let Some(record) = disk.get_mut(path) {
                record.sync();
            }
            let sim = file.cast::<SimFile>();
            if (*sim).dir_sync_pending {
                (*sim).dir_sync_pending = false;
                sync_dir(&mut disk, path.parent().unwrap());
            }
        }
        rc
    }
}

unsafe extern "C" fn x_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    unsafe { (methods(file).xFileSize.unwrap())(inner(file), size) }
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, lock: c_int) -> c_int {
    unsafe { (methods(file).xLock.unwrap())(inner(file), lock) }
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, lock: c_int) -> c_int {
    unsafe { (methods(file).xUnlock.unwrap())(inner(file), lock) }
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    unsafe { (methods(file).xCheckReservedLock.unwrap())(inner(file), out) }
}

unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    unsafe { (methods(file).xFileControl.unwrap())(inner(file), op, arg) }
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe { (methods(file).xSectorSize.unwrap())(inner(file)) }
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe { (methods(file).xDeviceCharacteristics.unwrap())(inner(file)) }
}

unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    unsafe { (methods(file).xShmMap.unwrap())(inner(file), page, size, extend, out) }
}

unsafe extern "C" fn x_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    unsafe { (methods(file).xShmLock.unwrap())(inner(file), offset, n, flags) }
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    unsafe { (methods(file).xShmBarrier.unwrap())(inner(file)) }
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    unsafe { (methods(file).xShmUnmap.unwrap())(inner(file), delete) }
}

/// Version 2: shared memory yes, memory-mapped reads no (they would bypass `x_read`, which is
/// harmless, but keep the model simple).
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 2,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: None,
    xUnfetch: None,
};
