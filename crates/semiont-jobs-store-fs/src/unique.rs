//! Unique keys: one reservation file per key in `unique/`, naming the job
//! that took the key last, read and replaced only under the key's lock
//! stripe (`locks/unique-NN`), which every process takes before any job
//! lock. A key is free when its reservation is missing, unreadable, names
//! a job that does not exist, or names a job that no longer holds it
//! (`rules::blocks_key`); so finishing a job needs no write here, and a
//! crash anywhere leaves at worst a reservation that counts as free.

use std::io;

use semiont_jobs_model::{Job, JobId, Timestamp};
use semiont_jobs_store::{rules, Error, ErrorKind, Result};
use serde_json::json;

use crate::error::io_err;
use crate::inner::{step, Inner};
use crate::key::Key;
use crate::layout::JobGuard;

/// Longest reservation name made by escaping; longer keys use a hash.
const MAX_ESCAPED: usize = 200;

/// FNV-1a, 64 bits: the key's lock stripe (stable across processes and
/// versions, unlike `std`'s hasher).
fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a, 128 bits: the name of a long key's reservation.
fn fnv128(bytes: &[u8]) -> u128 {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    h
}

/// The reservation file name of `key`: `k-` and the key with every byte
/// outside `[A-Za-z0-9_-]` written `%XX`, or, when that is longer than 200
/// bytes, `h-` and a 128-bit hash of the key in hex (the file then holds
/// the key, and a different key found there is a collision, refused).
pub(crate) fn reservation_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push_str("k-");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        if out.len() > MAX_ESCAPED {
            return format!("h-{:032x}", fnv128(key.as_bytes()));
        }
    }
    out
}

/// What a reservation file says: the key and the job that took it.
fn parse_reservation(bytes: &[u8]) -> Option<(String, JobId)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let key = v.get("uniqueKey")?.as_str()?.to_owned();
    let id = JobId::parse(v.get("jobId")?.as_str()?).ok()?;
    Some((key, id))
}

impl Inner {
    /// Locks unique key `key` across threads and processes. Always taken
    /// before a job lock, never while holding one (except by
    /// [`Inner::try_lock_key`]).
    pub fn lock_key(&self, key: &str) -> Result<JobGuard<'_>> {
        self.key_stripes
            .lock_hash(fnv64(key.as_bytes()))
            .map_err(|e| io_err("lock", self.layout.locks.path(), e))
    }

    /// Like [`Inner::lock_key`] without waiting (for a caller that already
    /// holds a job lock): `None` when the stripe is busy.
    pub fn try_lock_key(&self, key: &str) -> Result<Option<JobGuard<'_>>> {
        self.key_stripes
            .try_lock_hash(fnv64(key.as_bytes()))
            .map_err(|e| io_err("lock", self.layout.locks.path(), e))
    }

    /// The job the reservation of `key` names, if it is readable and for
    /// this key. The caller holds the key's lock.
    fn reserved_by(&self, key: &str) -> Result<Option<JobId>> {
        let name = reservation_name(key);
        let dir = &self.layout.unique;
        let mut buf = Vec::new();
        match dir.read(&name, &mut buf) {
            Ok(_) => {}
            Err(e) if crate::sys::is_not_found(&e) => return Ok(None),
            Err(e)
                if e.kind() == io::ErrorKind::InvalidData || crate::sys::is_symlink_error(&e) =>
            {
                tracing::warn!(file = %dir.join(&name).display(), error = %e, "unusable unique-key reservation; counting the key as free");
                return Ok(None);
            }
            Err(e) => return Err(io_err("read", dir.join(&name), e)),
        }
        match parse_reservation(&buf) {
            Some((k, id)) if k == key => Ok(Some(id)),
            Some((other, _)) => {
                tracing::warn!(key, other, "unique-key hash collision");
                Err(Error::from(semiont_jobs_model::Error::InvalidUniqueKey {
                    key: key.chars().take(64).collect(),
                    reason: "its reservation file is taken by another key with the same hash; choose another key",
                }))
            }
            None => {
                tracing::warn!(file = %dir.join(&name).display(), "unreadable unique-key reservation; counting the key as free");
                Ok(None)
            }
        }
    }

    /// Checks that no other job holds `key` against `job` at `now` (see
    /// `rules::unique_key_claim`) and points the reservation at `job`. The
    /// caller holds the key's lock and writes the job afterwards, so a
    /// crash in between leaves a reservation naming a job that does not
    /// exist: free.
    pub fn take_key(&self, key: &str, job: &Job, now: Option<Timestamp>) -> Result<()> {
        if let Some(id) = self.reserved_by(key)? {
            if id != job.id {
                match self.get_key(&Key::of(&id)) {
                    Ok(holder) if rules::blocks_key(&holder, job, now) => {
                        return Err(rules::key_taken(key, &holder));
                    }
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Corrupt) => {}
                    Err(e) => return Err(e),
                }
            } else {
                return Ok(());
            }
        }
        self.reserve_key(key, &job.id)
    }

    /// Publishes a reservation of `key` for `id`: staged in this instance's
    /// staging directory, renamed over the old one, the directory synced
    /// when durable (so a power loss never brings back a reservation older
    /// than the job it guards).
    fn reserve_key(&self, key: &str, id: &JobId) -> Result<()> {
        let name = reservation_name(key);
        let staged = format!("reserve.{}", self.staging.next_seq());
        let body = serde_json::to_vec_pretty(&json!({ "uniqueKey": key, "jobId": id }))
            .unwrap_or_default();
        self.staging
            .publish(&staged, &body, &self.layout.unique, &name)?;
        step("unique", "reserved");
        Ok(())
    }

    /// Removes the reservation of `key` if it still names `id` (after the
    /// job was deleted). Best effort: a reservation left behind is free.
    pub fn release_key(&self, key: &str, id: &JobId) {
        let Ok(_g) = self.lock_key(key) else { return };
        if matches!(self.reserved_by(key), Ok(Some(held)) if held == *id) {
            let name = reservation_name(key);
            if let Err(e) = self.layout.unique.unlink(&name) {
                tracing::debug!(file = %self.layout.unique.join(&name).display(), error = %e, "cannot remove a unique-key reservation");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_names_are_file_names() {
        assert_eq!(reservation_name("doc-1_x"), "k-doc-1_x");
        assert_eq!(reservation_name("a/b c.."), "k-a%2Fb%20c%2E%2E");
        assert_eq!(reservation_name("é"), "k-%C3%A9");
        let long = "x/".repeat(100);
        let name = reservation_name(&long);
        assert!(name.starts_with("h-") && name.len() == 34, "{name}");
        assert_ne!(name, reservation_name(&"y/".repeat(100)));
        for key in ["..", ".", "/", "a\\b", &"é".repeat(100)] {
            let n = reservation_name(key);
            assert!(n.len() <= MAX_ESCAPED + 2, "{n}");
            assert!(!n.contains('/') && !n.starts_with('.'), "{n}");
        }
    }

    #[test]
    fn hashes_are_stable() {
        // Fixed values: other processes and versions must agree.
        assert_eq!(fnv64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv128(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_eq!(fnv128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }
}
