//! glibc's allocator tuned for tensors: freed buffers stay with the process.
//!
//! By default glibc hands every freed block above its mmap threshold (dynamic, at most 32 MiB)
//! back to the kernel, and trims the top of the heap once 128 KiB are free there. A network run
//! batch after batch allocates and frees the same large activations each time, so each batch
//! page-faults its buffers in again and every unmapping shoots down the other threads' TLBs.
//! Measured on the demo's exemplars (EfficientNet-Lite0, 1,220 photos, 512 units, 2 cores):
//! 21.6 s of system time and 61.5 s of wall time before, 9.0 s and 54.9 s after, peak RSS 268 ->
//! 279 MB (docs/performance.md, "First run").

/// Keeps blocks up to 32 MiB (glibc's largest threshold) on the heap and never trims it below
/// 2 GiB of free space. A no-op on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
