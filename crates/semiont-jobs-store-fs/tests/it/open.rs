//! Opening a jobs directory: permissions, refusals (symlinks, files,
//! another user's directory), and what the store reports about itself.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use semiont_jobs_store::{Capabilities, JobStore};
use semiont_jobs_store_fs::{FsStore, OpenError};

use crate::support::{self, noop_job};

#[tokio::test]
async fn directories_are_0700_and_files_0600() {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    let job = noop_job();
    store.create(&job).await.unwrap();
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    for sub in [
        "pending",
        "running",
        "complete",
        "failed",
        "cancelled",
        "tmp",
        "quarantine",
        "workers",
        "locks",
    ] {
        assert_eq!(
            std::fs::metadata(dir.join(sub)).unwrap().mode() & 0o777,
            0o700,
            "{sub}"
        );
    }
    let file = dir.join("pending").join(format!("{}.json", job.id));
    assert_eq!(std::fs::metadata(file).unwrap().mode() & 0o777, 0o600);
    assert_eq!(store.capabilities(), Capabilities::new(true, true, true));
    assert_eq!(store.dir(), dir);
}

#[tokio::test]
async fn refuses_a_symlinked_root_or_status_dir() {
    let tmp = crate::support::tempdir();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("jobs");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = FsStore::open(&link, support::opts()).await.unwrap_err();
    assert!(matches!(err, OpenError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("symlink"), "{err}");

    let dir = tmp.path().join("jobs2");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&real, dir.join("pending")).unwrap();
    let err = FsStore::open(&dir, support::opts()).await.unwrap_err();
    assert!(matches!(err, OpenError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("pending"), "{err}");
}

#[tokio::test]
async fn refuses_a_file_where_a_directory_belongs() {
    let tmp = crate::support::tempdir();
    let file = tmp.path().join("jobs");
    std::fs::write(&file, b"x").unwrap();
    let err = FsStore::open(&file, support::opts()).await.unwrap_err();
    assert!(matches!(err, OpenError::NotADirectory { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{} is not a directory", file.display())
    );
}

#[tokio::test]
async fn refuses_another_users_directory() {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    std::fs::create_dir(&dir).unwrap();
    // Only root can give a directory away; elsewhere there is nothing to test.
    if std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).is_err() {
        return;
    }
    let err = FsStore::open(&dir, support::opts()).await.unwrap_err();
    assert!(
        matches!(err, OpenError::ForeignOwner { owner: 4242, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("owned by uid 4242"), "{err}");
}
