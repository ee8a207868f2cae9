//! Opening and closing a store instance: checking the layout, creating and
//! locking this instance's staging directory (under the recovery lock, so
//! no other process's recovery removes it in between), assembling
//! [`Inner`] from its parts, the first recovery pass and index scan; and,
//! when the instance closes, removing its staging directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use semiont_jobs_store::{Error, CHANGE_CHANNEL_CAPACITY};
use tokio::sync::broadcast;

use crate::index::Index;
use crate::inner::Inner;
use crate::layout::{self, Layout, Stripes, RECOVERY_LOCK};
use crate::quarantine::Quarantine;
use crate::snapshot::OpenReport;
use crate::staging::Staging;
use crate::{control, watch, FsOptions, OpenError};

impl Drop for Inner {
    fn drop(&mut self) {
        // Our own staged files are leftovers of failed operations only.
        self.staging.clear();
        let _ = self.layout.tmp_root.rmdir(&self.instance);
    }
}

/// An opened store's state, its watcher (when watching) and how its index
/// was built.
pub(crate) type Opened = (Inner, Option<watch::Watcher>, OpenReport);

/// Opens the jobs directory `root` (blocking): the layout checked, this
/// instance's staging directory created and locked, the parts assembled,
/// the watcher started, a recovery pass, then the scan that builds the
/// index.
pub(crate) fn open_blocking(
    root: PathBuf,
    opts: FsOptions,
) -> std::result::Result<Opened, OpenError> {
    let (layout, quarantine) = Layout::open(&root)?;
    let stripes = Stripes::open(&layout.locks)?;
    let key_stripes = Stripes::open_named(&layout.locks, "unique")?;
    let recovery_lock = layout
        .locks
        .open_rw(RECOVERY_LOCK, true)
        .map_err(|e| OpenError::io("open", &layout.locks.join(RECOVERY_LOCK), e))?;
    let instance = layout::instance_name();
    let tmp_path = layout.tmp_root.join(&instance);
    // Create and lock the staging directory under the recovery lock: another
    // process's recovery removes unlocked staging directories, and must not
    // see ours between its creation and its lock.
    layout::flock_exclusive(&recovery_lock)
        .map_err(|e| OpenError::io("lock", &layout.locks.join(RECOVERY_LOCK), e))?;
    let staged = (|| {
        layout
            .tmp_root
            .mkdir(&instance, 0o700)
            .map_err(|e| OpenError::io("create", &tmp_path, e))?;
        let tmp = layout
            .tmp_root
            .open_sub(&instance)
            .map_err(|e| OpenError::io("open", &tmp_path, e))?;
        let instance_lock = tmp
            .as_file()
            .map_err(|e| OpenError::io("open", &tmp_path, e))?;
        instance_lock
            .try_lock()
            .map_err(|e| OpenError::io("lock", &tmp_path, std::io::Error::other(e.to_string())))?;
        Ok((tmp, instance_lock))
    })();
    let _ = recovery_lock.unlock();
    let (tmp, instance_lock) = staged?;
    let durable = opts.sync();
    let quarantine = Quarantine::new(quarantine, opts.quarantine_grace, durable);
    let inner = Inner {
        layout,
        opts,
        stripes,
        key_stripes,
        staging: Staging::new(tmp, instance_lock, durable),
        instance,
        recovery_lock,
        recovery_mutex: Mutex::new(()),
        rescan_mutex: Mutex::new(()),
        index: Mutex::new(Index::default()),
        tx: broadcast::channel(CHANGE_CHANNEL_CAPACITY).0,
        quarantine,
        workers: Mutex::new(HashMap::new()),
        paused: Mutex::new(control::PausedCache::default()),
    };
    let watch = if inner.opts.watch {
        match watch::start(&inner) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %root.display(), error = %e, "cannot watch the status directories; changes by other processes show up at rescans only");
                None
            }
        }
    } else {
        None
    };
    let store_err = |source: Error| OpenError::Store {
        path: root.clone(),
        source,
    };
    // Recovery first (rolls interrupted operations forward or back), then
    // the scan that builds the index from the repaired directories.
    // Only workers seen dead: leases are the callers' to judge.
    inner.recover(None).map_err(store_err)?;
    let report = inner.initial_scan().map_err(store_err)?;
    Ok((inner, watch, report))
}
