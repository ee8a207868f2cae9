//! `Idempotency-Key` for `POST /jobs`: a bounded in-memory map from (token,
//! key) to the job the first request created, so a client that retries
//! after a lost response gets that job back instead of a second one.
//!
//! Scope, as documented for clients: per server process (forgotten on
//! restart, not shared between servers), per token (two tokens may use the
//! same key), for `ttl` after the first request and while fewer than
//! `capacity` newer keys were used (the oldest is forgotten first). The same
//! key with a different body (byte for byte) is refused; while the first
//! request runs, a second one with its key gets a conflict.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semiont_jobs_model::JobId;

use crate::{Error, ErrorKind, Result};

/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 255;

type Scope = (Option<usize>, String);

enum Slot {
    InFlight {
        fingerprint: u64,
        generation: u64,
    },
    Done {
        fingerprint: u64,
        generation: u64,
        job: JobId,
    },
}

impl Slot {
    fn generation(&self) -> u64 {
        match self {
            Slot::InFlight { generation, .. } | Slot::Done { generation, .. } => *generation,
        }
    }

    fn fingerprint(&self) -> u64 {
        match self {
            Slot::InFlight { fingerprint, .. } | Slot::Done { fingerprint, .. } => *fingerprint,
        }
    }
}

#[derive(Default)]
struct Map {
    slots: HashMap<Scope, Slot>,
    /// Keys by first use, oldest first (entries whose generation no longer
    /// matches the slot are stale and skipped).
    order: VecDeque<(Scope, u64, Instant)>,
    generation: u64,
}

/// The remembered keys.
#[derive(Clone)]
pub(crate) struct Idempotency {
    map: Arc<Mutex<Map>>,
    capacity: usize,
    ttl: Duration,
}

/// The outcome of presenting a key.
pub(crate) enum Begin {
    /// First use: create the job, then [`Reservation::finish`].
    Fresh(Reservation),
    /// Seen before with the same body: this job was created for it.
    Replay(JobId),
}

/// A key being used by a request in flight; dropped unfinished (the create
/// failed), the key is forgotten so the client can try again.
pub(crate) struct Reservation {
    owner: Idempotency,
    scope: Scope,
    generation: u64,
    finished: bool,
}

impl Reservation {
    /// Records the job created for the key.
    pub fn finish(mut self, job: JobId) {
        let mut map = self.owner.lock();
        if let Some(slot) = map.slots.get_mut(&self.scope) {
            if slot.generation() == self.generation {
                *slot = Slot::Done {
                    fingerprint: slot.fingerprint(),
                    generation: self.generation,
                    job,
                };
            }
        }
        self.finished = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut map = self.owner.lock();
        if map
            .slots
            .get(&self.scope)
            .is_some_and(|s| s.generation() == self.generation)
        {
            map.slots.remove(&self.scope);
        }
    }
}

/// Checks a key's syntax: 1 to 255 visible ASCII characters.
pub(crate) fn validate_key(key: &[u8]) -> Result<String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.iter().all(u8::is_ascii_graphic) {
        return Err(Error::invalid(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(String::from_utf8_lossy(key).into_owned())
}

/// The fingerprint of a request body.
pub(crate) fn fingerprint(body: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

impl Idempotency {
    /// Remembers up to `capacity` keys for `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Idempotency {
            map: Arc::default(),
            capacity,
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Presents `key` of caller `token` with a body of `fingerprint`.
    pub fn begin(&self, token: Option<usize>, key: String, fingerprint: u64) -> Result<Begin> {
        let now = Instant::now();
        let scope = (token, key);
        let mut map = self.lock();
        self.evict(&mut map, now);
        match map.slots.get(&scope) {
            Some(slot) if slot.fingerprint() != fingerprint => {
                return Err(Error::new(
                    ErrorKind::Unprocessable,
                    "this Idempotency-Key was used with a different request body",
                ))
            }
            Some(Slot::InFlight { .. }) => {
                return Err(Error::conflict(
                    "a request with this Idempotency-Key is still being processed; retry later",
                ))
            }
            Some(Slot::Done { job, .. }) => return Ok(Begin::Replay(job.clone())),
            None => {}
        }
        map.generation += 1;
        let generation = map.generation;
        map.slots.insert(
            scope.clone(),
            Slot::InFlight {
                fingerprint,
                generation,
            },
        );
        map.order.push_back((scope.clone(), generation, now));
        Ok(Begin::Fresh(Reservation {
            owner: self.clone(),
            scope,
            generation,
            finished: false,
        }))
    }

    /// Forgets expired keys, and the oldest while over capacity.
    fn evict(&self, map: &mut Map, now: Instant) {
        loop {
            let keep = match map.order.front() {
                None => break,
                Some((scope, generation, at)) => {
                    let current = map
                        .slots
                        .get(scope)
                        .is_some_and(|s| s.generation() == *generation);
                    let expired = now.duration_since(*at) >= self.ttl;
                    current && !expired && map.slots.len() < self.capacity
                }
            };
            if keep {
                break;
            }
            if let Some((scope, generation, _)) = map.order.pop_front() {
                if map
                    .slots
                    .get(&scope)
                    .is_some_and(|s| s.generation() == generation)
                {
                    map.slots.remove(&scope);
                }
            }
        }
    }

    /// Keys remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> JobId {
        JobId::parse(&format!("job-{n}")).unwrap()
    }

    fn fresh(i: &Idempotency, token: Option<usize>, key: &str, fp: u64) -> Reservation {
        match i.begin(token, key.into(), fp).unwrap() {
            Begin::Fresh(r) => r,
            Begin::Replay(j) => panic!("replayed {j}"),
        }
    }

    #[test]
    fn same_key_same_body_replays_different_body_is_refused() {
        let i = Idempotency::new(10, Duration::from_secs(60));
        fresh(&i, Some(0), "k", 1).finish(id(1));
        assert!(matches!(i.begin(Some(0), "k".into(), 1).unwrap(), Begin::Replay(j) if j == id(1)));
        let e = i.begin(Some(0), "k".into(), 2).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Unprocessable);
        // Another token's key space is separate.
        fresh(&i, Some(1), "k", 2).finish(id(2));
    }

    #[test]
    fn in_flight_keys_conflict_and_failed_requests_free_the_key() {
        let i = Idempotency::new(10, Duration::from_secs(60));
        let r = fresh(&i, None, "k", 1);
        assert_eq!(
            i.begin(None, "k".into(), 1).err().unwrap().kind(),
            ErrorKind::Conflict
        );
        drop(r);
        fresh(&i, None, "k", 1).finish(id(3));
        assert_eq!(i.len(), 1);
    }

    #[test]
    fn capacity_and_ttl_bound_the_map() {
        let i = Idempotency::new(3, Duration::from_secs(60));
        for n in 0..10 {
            fresh(&i, None, &format!("k{n}"), 1).finish(id(n));
        }
        assert!(i.len() <= 3, "{}", i.len());
        // The newest key is still remembered, the oldest forgotten.
        assert!(matches!(
            i.begin(None, "k9".into(), 1).unwrap(),
            Begin::Replay(_)
        ));
        assert!(matches!(
            i.begin(None, "k0".into(), 1).unwrap(),
            Begin::Fresh(_)
        ));
        let short = Idempotency::new(10, Duration::ZERO);
        fresh(&short, None, "k", 1).finish(id(1));
        assert!(matches!(
            short.begin(None, "k".into(), 1).unwrap(),
            Begin::Fresh(_)
        ));
    }

    #[test]
    fn key_syntax() {
        assert!(validate_key(b"0f8fad5b-d9cb-469f-a165-70867728950e").is_ok());
        for bad in [&b""[..], b"a b", b"\x00", &[b'k'; 256]] {
            let e = validate_key(bad).unwrap_err();
            assert!(e.to_string().contains("Idempotency-Key"), "{e}");
        }
    }
}
