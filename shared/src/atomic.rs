//! Files and folders that appear whole or not at all: written under a temporary name beside the
//! target and renamed into place (a rename within one folder is atomic). A reader, or a run
//! killed halfway, never sees half a file; an abandoned temporary is deleted when its guard drops.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically (synced before the rename).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A file or folder being written under a temporary name, for writers that need a path (a
/// plotting backend, a record saver): write to [`Pending::path`], then [`Pending::commit`].
#[derive(Debug)]
pub struct Pending {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Pending {
    /// A temporary path beside `target`, hidden and unique to this process and call; the target's
    /// extension is kept (some writers choose the format by it).
    pub fn new(target: &Path) -> Result<Pending> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = target
            .file_name()
            .with_context(|| format!("{} names no file", target.display()))?
            .to_string_lossy();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".tmp-{}-{n}-{name}", std::process::id()));
        Ok(Pending {
            tmp,
            target: target.to_owned(),
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Renames the finished file (or folder) into place, replacing what was there.
    pub fn commit(mut self) -> Result<()> {
        if self.tmp.is_dir() && self.target.exists() {
            std::fs::remove_dir_all(&self.target)
                .with_context(|| format!("replacing {}", self.target.display()))?;
        }
        std::fs::rename(&self.tmp, &self.target)
            .with_context(|| format!("moving into {}", self.target.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Moves a finished folder (built in a temporary folder on the same file system) into place,
/// replacing what was there.
pub fn publish_dir(finished: &Path, target: &Path) -> Result<()> {
    if target.exists() {
        std::fs::remove_dir_all(target)
            .with_context(|| format!("replacing {}", target.display()))?;
    }
    std::fs::rename(finished, target).with_context(|| format!("moving into {}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_committed_and_an_abandoned_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("plot.png");
        let pending = Pending::new(&target).unwrap();
        std::fs::write(pending.path(), b"half").unwrap();
        assert!(!target.exists());
        assert!(
            pending.path().to_string_lossy().ends_with("plot.png"),
            "extension kept"
        );
        drop(pending);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left"
        );

        let pending = Pending::new(&target).unwrap();
        std::fs::write(pending.path(), b"whole").unwrap();
        pending.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");

        write(&target, b"again").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"again");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_folder_replaces_the_old_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("features");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old"), b"x").unwrap();
        let pending = Pending::new(&target).unwrap();
        std::fs::create_dir(pending.path()).unwrap();
        std::fs::write(pending.path().join("new"), b"y").unwrap();
        pending.commit().unwrap();
        assert!(target.join("new").is_file() && !target.join("old").exists());
    }
}
