//! [`Staging`]: this instance's staging directory `tmp/<instance>` and
//! everything written through it before it is published by rename.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use semiont_jobs_store::Result;

use crate::error::io_err;
use crate::inner::step;
use crate::key::Key;
use crate::layout;
use crate::sys::{self, Dir};

/// Most spare files an instance keeps.
const MAX_SPARES: usize = 32;
/// Spare files are `tmp/<instance>/spare.<n>`.
const SPARE_PREFIX: &str = "spare.";

/// Whether `name` (in a staging directory) is a spare file's.
fn is_spare_name(name: &str) -> bool {
    name.strip_prefix(SPARE_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Which syncs a staged move makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MoveSync {
    /// None (durability `none`, progress updates, heartbeats).
    Nothing,
    /// `fdatasync` of the staged file only (claims in `fsync` mode: never a
    /// torn file; a claim lost to power loss just leaves the job pending).
    File,
    /// The staged file and both directories.
    Full,
}

/// This instance's staging directory, `tmp/<instance>`, and what is
/// written through it. It owns:
///
/// - the directory and its `flock` (held while the instance lives, so no
///   recovery pass removes the directory under it);
/// - the names of staged files (a counter, see [`layout::staged_name`]);
/// - the spare files an exchange swaps out, kept for reuse (see
///   [`Staging::stage`]);
/// - how a staged file replaces a published one: an exchange where the
///   filesystem has it, else a rename ([`Staging::replace`]);
/// - whole small files published by rename (`paused.json`, unique-key
///   reservations, the index snapshot: [`Staging::publish`]).
///
/// What it does not own: the job protocol (which file goes where, under
/// which lock) is [`Inner::move_job`](crate::inner::Inner::move_job)'s.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: Dir,
    /// The directory's `flock`, released when the instance closes.
    _lock: File,
    /// Whether durability is `fsync` (`FsOptions::sync`).
    durable: bool,
    /// Numbers for unique staged and spare names.
    seq: AtomicU64,
    /// Whether `renameat2(RENAME_EXCHANGE)` works here (cleared at the
    /// first `EINVAL`).
    exchange_ok: AtomicBool,
    /// Spare files in the directory, oldest first.
    spares: Mutex<VecDeque<String>>,
}

impl Staging {
    /// The staging directory `dir`, locked by `lock`; `durable` when
    /// durability is `fsync`.
    pub fn new(dir: Dir, lock: File, durable: bool) -> Staging {
        Staging {
            dir,
            _lock: lock,
            durable,
            seq: AtomicU64::new(0),
            exchange_ok: AtomicBool::new(true),
            spares: Mutex::new(VecDeque::new()),
        }
    }

    /// The staging directory.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// A number no other name of this instance used.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh staged-file name for `key`.
    pub fn staged_name(&self, key: &Key, target: &str) -> String {
        layout::staged_name(key, target, self.next_seq())
    }

    /// Writes `data` to the new staged file `name` in this instance's
    /// staging directory: into a spare file when `spare_ok` and one is at
    /// hand (rewritten in place, then renamed to `name`), else into a new
    /// file. Returns the staged file's inode.
    ///
    /// Spares are the files an exchange swapped out (see
    /// [`Staging::recycle`]). On ext4 without a journal, creating a file where
    /// files were freed recently is slow (the inode allocator skips
    /// recently freed inodes), and so is freeing one whose blocks were
    /// written (with `discard`); a spare does neither.
    pub fn stage(&self, name: &str, data: &[u8], sync: bool, spare_ok: bool) -> io::Result<u64> {
        if spare_ok {
            if let Some((spare, ino)) = self.stage_in_spare(data, sync) {
                match sys::rename(&self.dir, &spare, &self.dir, name, true) {
                    Ok(()) => return Ok(ino),
                    Err(e) => {
                        tracing::debug!(file = %self.dir.join(&spare).display(), error = %e, "cannot reuse a spare file");
                        let _ = self.dir.unlink(&spare);
                    }
                }
            }
        }
        self.dir.create_write(name, data, sync, true)
    }

    /// Rewrites a spare file with `data` where it is (durability `none`
    /// only), for content that needs no staged name; returns the spare's
    /// name and inode, or `None` when there is no spare or it failed (the
    /// spare is then deleted).
    pub fn stage_in_spare(&self, data: &[u8], sync: bool) -> Option<(String, u64)> {
        if self.durable {
            return None;
        }
        let spare = self.spares().pop_front()?;
        match self.dir.rewrite(&spare, data, sync) {
            Ok(ino) => Some((spare, ino)),
            Err(e) => {
                tracing::debug!(file = %self.dir.join(&spare).display(), error = %e, "cannot reuse a spare file");
                let _ = self.dir.unlink(&spare);
                None
            }
        }
    }

    /// Keeps the exchanged-out file `staged` (old content, in this
    /// instance's staging directory) as a spare for [`Staging::stage`],
    /// renamed to `spare.<n>` (a name recovery treats as junk) unless it
    /// already is a spare, or deletes it when there are enough spares.
    fn recycle(&self, staged: &str) {
        let mut spares = self.spares();
        if is_spare_name(staged) && spares.len() < MAX_SPARES {
            spares.push_back(staged.to_owned());
            return;
        }
        if spares.len() < MAX_SPARES && !self.durable {
            let spare = format!("{SPARE_PREFIX}{}", self.next_seq());
            if sys::rename(&self.dir, staged, &self.dir, &spare, true).is_ok() {
                spares.push_back(spare);
                return;
            }
        }
        drop(spares);
        if let Err(e) = self.dir.unlink(staged) {
            // Only the old content is left behind; the staging directory
            // is emptied when the store closes or by the next open's
            // recovery after a crash.
            tracing::debug!(file = %self.dir.join(staged).display(), error = %e, "cannot remove an exchanged-out file");
        }
    }

    fn spares(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.spares.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Step 3 of [`Inner::move_job`](crate::inner::Inner::move_job):
    /// publishes the staged file as `to/<name>`, replacing the file there;
    /// the replaced file is kept as a spare when `recycle`.
    ///
    /// Usually an exchange (`renameat2(RENAME_EXCHANGE)`) followed by an
    /// unlink of the staged name, which then holds the old content: on ext4
    /// a `rename(2)` over an existing file makes the kernel start writing
    /// the renamed file back at once (`auto_da_alloc`), and the replaced
    /// file's freshly allocated blocks are then freed (with `discard`,
    /// synchronously); an exchange does neither. A plain rename over the
    /// file is kept where that flush is the only power-loss protection the
    /// content has: an unsynced rewrite (progress, heartbeat) in durable
    /// mode. It is also the fallback on filesystems without exchange.
    /// Recovery never rolls an exchanged-out file forward: see
    /// docs/storage-format.md ("Staged files").
    pub fn replace(
        &self,
        staged: &str,
        to: &Dir,
        name: &str,
        durability: MoveSync,
        recycle: bool,
        op: &str,
    ) -> io::Result<()> {
        let want_flush = self.durable && durability == MoveSync::Nothing;
        if !want_flush && self.exchange_ok.load(Ordering::Relaxed) {
            match sys::exchange(&self.dir, staged, to, name) {
                Ok(()) => {
                    step(op, "exchanged");
                    if recycle {
                        self.recycle(staged);
                    } else if let Err(e) = self.dir.unlink(staged) {
                        tracing::debug!(file = %self.dir.join(staged).display(), error = %e, "cannot remove an exchanged-out file");
                    }
                    return Ok(());
                }
                Err(e) if sys::is_unsupported(&e) => {
                    tracing::debug!(dir = %to.path().display(), "renameat2(RENAME_EXCHANGE) unsupported; replacing by rename");
                    self.exchange_ok.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        sys::rename(&self.dir, staged, to, name, false)
    }

    /// Publishes a whole small file: writes `data` to the staged file
    /// `staged` (synced when durable), renames it over `to/<name>`, and
    /// syncs `to` when durable. The staged file is removed when the rename
    /// fails.
    pub fn publish(&self, staged: &str, data: &[u8], to: &Dir, name: &str) -> Result<()> {
        self.dir
            .create_write(staged, data, self.durable, false)
            .map_err(|e| io_err("write", self.dir.join(staged), e))?;
        if let Err(e) = sys::rename(&self.dir, staged, to, name, false) {
            let _ = self.dir.unlink(staged);
            return Err(io_err("rename", to.join(name), e));
        }
        if self.durable {
            to.sync().map_err(|e| io_err("fsync", to.path(), e))?;
        }
        Ok(())
    }

    /// Removes every file in the directory (when the instance closes: they
    /// are leftovers of failed operations and spares).
    pub fn clear(&self) {
        if let Ok(names) = self.dir.list() {
            for (name, _) in names {
                let _ = self.dir.unlink(&name);
            }
        }
    }
}
