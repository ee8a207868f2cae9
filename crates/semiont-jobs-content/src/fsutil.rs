//! Careful filesystem primitives shared by the stores: private directories,
//! no symlink following, publish by temp file + rename (or link, to never
//! replace), optional fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::{Error, Result};

/// Name of the staging directory inside each store root. Ids cannot start
/// with `.`, so it never collides with a resource.
pub(crate) const TMP_DIR: &str = ".tmp";

/// Largest file a store reads (guards against a huge foreign file).
pub(crate) const MAX_FILE_BYTES: u64 = 64 << 20;

/// Staged files older than this are leftovers of a crashed writer.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates `dir` (mode 0700) if missing, and checks it is a real directory,
/// not a symlink.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(dir)
                .map_err(|e| Error::io("create directory", dir, e))?;
        }
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    check_dir(dir)
}

/// Checks that `dir` is a directory and not a symlink.
pub(crate) fn check_dir(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).map_err(|e| Error::io("inspect", dir, e))?;
    if meta.file_type().is_symlink() {
        return Err(Error::UnsafePath {
            path: dir.to_owned(),
            reason: "it is a symlink",
        });
    }
    if !meta.is_dir() {
        return Err(Error::UnsafePath {
            path: dir.to_owned(),
            reason: "it is not a directory",
        });
    }
    Ok(())
}

/// Whether `dir` exists (as a real directory).
pub(crate) fn dir_exists(dir: &Path) -> Result<bool> {
    match fs::symlink_metadata(dir) {
        Ok(_) => check_dir(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("inspect", dir, e)),
    }
}

/// Reads a regular file without following a symlink at its last component.
/// `Ok(None)` when it does not exist.
pub(crate) fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
    if !meta.is_file() {
        return Err(Error::UnsafePath {
            path: path.to_owned(),
            reason: "it is not a regular file",
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "{} bytes is more than the limit of {MAX_FILE_BYTES}",
                meta.len()
            ),
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    (&file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Some(buf))
}

/// A file written under `<root>/.tmp/`, not yet published. Removed on drop
/// unless published.
pub(crate) struct Staged {
    path: PathBuf,
    done: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to a fresh file (0600) in `<root>/.tmp/`.
pub(crate) fn stage(root: &Path, bytes: &[u8], durable: bool) -> Result<Staged> {
    let tmp_dir = root.join(TMP_DIR);
    ensure_dir(&tmp_dir)?;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "{}-{}-{nanos}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = tmp_dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    let staged = Staged { path, done: false };
    file.write_all(bytes)
        .map_err(|e| Error::io("write", &staged.path, e))?;
    if durable {
        file.sync_all()
            .map_err(|e| Error::io("fsync", &staged.path, e))?;
    }
    Ok(staged)
}

fn sync_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        let dir = File::open(parent).map_err(|e| Error::io("open", parent, e))?;
        dir.sync_all()
            .map_err(|e| Error::io("fsync directory", parent, e))?;
    }
    Ok(())
}

/// Publishes a staged file at `dest`, replacing whatever is there.
pub(crate) fn publish_replace(mut staged: Staged, dest: &Path, durable: bool) -> Result<()> {
    fs::rename(&staged.path, dest).map_err(|e| Error::io("rename", dest, e))?;
    staged.done = true;
    if durable {
        sync_parent(dest)?;
    }
    Ok(())
}

/// Publishes a staged file at `dest` only if nothing is there: `Ok(false)`
/// when `dest` exists already (the staged file is discarded). Atomic across
/// processes: of many concurrent publishers exactly one gets `Ok(true)`.
pub(crate) fn publish_new(staged: Staged, dest: &Path, durable: bool) -> Result<bool> {
    // A hard link fails with EEXIST instead of replacing, atomically.
    match fs::hard_link(&staged.path, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(Error::io("link", dest, e)),
    }
    drop(staged);
    if durable {
        sync_parent(dest)?;
    }
    Ok(true)
}

/// Removes staged files older than an hour (left by crashed writers).
pub(crate) fn sweep_tmp(root: &Path) {
    let tmp_dir = root.join(TMP_DIR);
    let Ok(entries) = fs::read_dir(&tmp_dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_TMP_AGE);
        if old && meta.is_file() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Sets mode 0700 on a directory the store created long ago with another mode.
pub(crate) fn tighten_dir(dir: &Path) {
    if let Ok(meta) = fs::symlink_metadata(dir) {
        if meta.is_dir() && meta.permissions().mode() & 0o077 != 0 {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
    }
}

/// Runs blocking filesystem work off the async runtime's worker threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Io {
            op: "run blocking task",
            path: PathBuf::new(),
            source: io::Error::other(e.to_string()),
        }),
    }
}
