//! The storage contract of semiont-jobs: the [`JobStore`] trait every backend
//! implements, its error type, an in-memory backend ([`MemoryStore`]), and —
//! behind the `conformance` feature — the behaviour suite every backend must
//! pass.
//!
//! The contract in one sentence: every state change is a compare-and-swap on
//! (status, attempt). A writer says "move job X from status A (at attempt N)
//! to this new content"; if X is no longer in A at N, it gets
//! [`ErrorKind::Conflict`] and nothing is written. Claiming is "take the
//! oldest due pending job of these types and make it running at attempt N+1",
//! atomically. This crate knows nothing about files or directories.

mod error;
mod host;
mod memory;
pub mod rules;
mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, ErrorKind, Result};
pub use host::{host_name, worker_id};
pub use memory::MemoryStore;
/// Which job types a claim accepts; defined in the model crate (workers
/// name their types without depending on the store), re-exported here where
/// claims use it.
pub use semiont_jobs_model::TypeFilter;
pub use store::{
    Capabilities, ChangeKind, ChangeOrigin, ChangeStream, CheckpointRequest, ClaimRequest,
    Durability, Expect, FinishedJob, Heartbeat, JobChange, JobSelector, JobStore, JobStoreExt,
    LostJob, RecoveryReport, UpdateFn, Updated, WorkerInfo, WorkerRecord,
};

/// Capacity of the change-event channel a backend should use: a subscriber
/// that falls further behind than this sees `Lagged` and should resynchronise
/// by reading the store.
pub const CHANGE_CHANNEL_CAPACITY: usize = 4096;
