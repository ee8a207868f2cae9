//! Errors of opening a jobs directory, and the mapping of IO failures to
//! the store's error type.

use std::io;
use std::path::{Path, PathBuf};

use semiont_jobs_store::Error;

/// Why [`FsStore::open`](crate::FsStore::open) failed. Each message is one
/// lowercase line naming the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The path (or a directory the store needs inside it) exists but is
    /// not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// A symlink where the store needs a real directory or file.
    #[error("{path} is a symlink; the jobs directory and everything in it must be real files (pass the resolved path)")]
    Symlink {
        /// The symlink.
        path: PathBuf,
    },
    /// The directory belongs to another user.
    #[error("{path} is owned by uid {owner}, not by this process's uid {uid}; refusing to use another user's files")]
    ForeignOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        uid: u32,
    },
    /// The operating system refused access.
    #[error("permission denied: cannot {op} {path}")]
    PermissionDenied {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Any other IO failure while opening.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The initial scan or recovery failed.
    #[error("cannot open jobs directory {path}: {source}")]
    Store {
        /// The jobs directory.
        path: PathBuf,
        /// The store error.
        #[source]
        source: Error,
    },
}

impl OpenError {
    /// An IO error on `path`, as the right variant.
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::PermissionDenied {
            OpenError::PermissionDenied {
                op,
                path: path.to_owned(),
                source,
            }
        } else if source.raw_os_error() == Some(libc::ELOOP) {
            OpenError::Symlink {
                path: path.to_owned(),
            }
        } else if source.raw_os_error() == Some(libc::ENOTDIR) {
            OpenError::NotADirectory {
                path: path.to_owned(),
            }
        } else {
            OpenError::Io {
                op,
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// A store IO error on `path`. `ENOSPC`/`EDQUOT` and `EACCES`/`EPERM`/`EROFS`
/// keep their kinds, so `Error::kind()` says `NoSpace` or `PermissionDenied`.
pub(crate) fn io_err(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
    Error::io(op, path, source)
}
