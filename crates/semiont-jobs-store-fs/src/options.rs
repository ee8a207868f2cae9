//! Options of the filesystem backend.

use std::time::Duration;

use semiont_jobs_store::Durability;

/// How an [`FsStore`](crate::FsStore) behaves: durability, watching, and
/// the periods of its background passes.
///
/// ```
/// use std::time::Duration;
/// use semiont_jobs_store_fs::{Durability, FsOptions};
///
/// let options = FsOptions::default()
///     .durability(Durability::None)
///     .rescan_interval(Some(Duration::from_secs(60)));
/// assert!(options.watch);
/// ```
#[derive(Clone, Debug)]
pub struct FsOptions {
    /// `None`: survive process crashes. `Fsync` (default): also power loss —
    /// every published file is `fdatasync`ed before its rename and the
    /// directories after it; `create_batch` uses one `syncfs` for the batch.
    /// Progress updates never wait for the disk in either mode.
    pub durability: Durability,
    /// Watch the status directories with `notify` so changes made by other
    /// processes reach the index and subscribers at once (default on).
    pub watch: bool,
    /// Period of the full rescan that corrects the index whatever the
    /// watcher missed (default 5 minutes; `None`: never).
    pub rescan_interval: Option<Duration>,
    /// Period of the background recovery pass (default 60 s; `None`: only
    /// at open and when `recover` is called).
    pub recovery_interval: Option<Duration>,
    /// A file that does not parse but was modified less than this long ago
    /// is left alone for now (another implementation may still be writing
    /// it in place); older ones are quarantined (default 2 s).
    pub quarantine_grace: Duration,
    /// Period of the background check that writes the index snapshot
    /// (`index.snapshot`) when at least 10,000 index changes are not in one
    /// (default 60 s; `None`: only when the store is dropped).
    pub snapshot_interval: Option<Duration>,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            durability: Durability::Fsync,
            watch: true,
            rescan_interval: Some(Duration::from_secs(300)),
            recovery_interval: Some(Duration::from_secs(60)),
            quarantine_grace: Duration::from_secs(2),
            snapshot_interval: Some(Duration::from_secs(60)),
        }
    }
}

impl FsOptions {
    /// Sets the durability mode.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Turns the directory watcher on or off.
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Sets the period of the full rescan (`None`: never).
    pub fn rescan_interval(mut self, every: Option<Duration>) -> Self {
        self.rescan_interval = every;
        self
    }

    /// Sets the period of the background recovery pass (`None`: never).
    pub fn recovery_interval(mut self, every: Option<Duration>) -> Self {
        self.recovery_interval = every;
        self
    }

    /// Sets how long an unparseable file is given before quarantine.
    pub fn quarantine_grace(mut self, grace: Duration) -> Self {
        self.quarantine_grace = grace;
        self
    }

    /// Sets the period of the background snapshot check (`None`: the
    /// snapshot is written only when the store is dropped).
    pub fn snapshot_interval(mut self, every: Option<Duration>) -> Self {
        self.snapshot_interval = every;
        self
    }

    pub(crate) fn sync(&self) -> bool {
        self.durability == Durability::Fsync
    }
}
