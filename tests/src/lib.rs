//! Shared helpers of the workspace-level integration tests (`tests/it`):
//! knowing whether the tests run as root, and mounting a small tmpfs for
//! the full-disk cases. The tests themselves live in `it/`; this library
//! uses nothing but `std`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this process runs as root (which ignores file permissions and
/// may mount filesystems).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// A tmpfs mounted for one test, unmounted on drop (also on panic).
#[derive(Debug)]
pub struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (e.g. `1m`, mode 0700) at `path`, creating
    /// the directory; `None` when this process may not mount (not root, or
    /// no `mount` binary).
    pub fn new(path: &Path, size: &str) -> Option<TmpfsMount> {
        if !running_as_root() {
            return None;
        }
        std::fs::create_dir_all(path).ok()?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .ok()?;
        out.status.success().then(|| TmpfsMount {
            path: path.to_owned(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
