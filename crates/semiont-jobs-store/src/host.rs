//! This host's name and default worker ids built from it: shared by the
//! backends (which record where a worker runs) and the runtimes (which name
//! their workers), so every layer names a host the same way.

use std::sync::atomic::{AtomicU64, Ordering};

use semiont_jobs_model::MAX_ID_LEN;

/// The host's name, reduced to `[A-Za-z0-9.-]` and at most 64 characters,
/// or `localhost` when it cannot be found. Read from `HOSTNAME`, then the
/// kernel (`/proc/sys/kernel/hostname`), then `/etc/hostname`.
pub fn host_name() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .take(64)
        .collect();
    if clean.is_empty() {
        "localhost".to_owned()
    } else {
        clean
    }
}

/// A worker id unique on this host for this process's lifetime:
/// `<prefix>-<host>-<pid>-<n>`, with characters outside `[A-Za-z0-9._-]`
/// replaced by `-` and cut to the id length limit (a valid id).
pub fn worker_id(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let raw = format!("{prefix}-{}-{}-{n}", host_name(), std::process::id());
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_ID_LEN)
        .collect();
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_are_valid_and_distinct() {
        let a = worker_id("my worker/x");
        let b = worker_id("my worker/x");
        assert_ne!(a, b);
        for id in [&a, &b] {
            semiont_jobs_model::JobId::parse(id).unwrap();
            assert!(id.starts_with("my-worker-x-"), "{id}");
        }
        let long = worker_id(&"w".repeat(500));
        assert_eq!(long.len(), MAX_ID_LEN);
        semiont_jobs_model::JobId::parse(&long).unwrap();
        assert!(!host_name().is_empty());
    }
}
