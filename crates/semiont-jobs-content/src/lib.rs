//! Content shared by the semiont-jobs workers: documents, W3C annotations,
//! text offsets and inference.
//!
//! - [`ResourceStore`] / [`FsResourceStore`]: documents (id, name, media
//!   type, language, text) under `<dataDir>/resources/`.
//! - [`AnnotationStore`] / [`FsAnnotationStore`]: W3C Web Annotations under
//!   `<dataDir>/annotations/<resource-id>/`, one file per id, idempotent and
//!   safe across processes.
//! - [`annotation`]: the W3C data model types; [`text`]: code-point offsets
//!   (the W3C convention) over UTF-8 text, sentences, selectors.
//! - [`inference`]: the [`InferenceClient`] trait and its offline, Ollama
//!   and OpenAI-compatible implementations, with errors classified
//!   retryable or permanent (with the wait a retry should honour and, for
//!   network errors, the root [`NetworkCause`]); [`ModelSettings`], the
//!   model's context, answer length, chunk size, temperature and
//!   concurrency.
//! - [`samples()`]: six short sample documents; [`install_samples`] stores
//!   them.
//! - [`DataDir`]: where each store lives under the application data root;
//!   [`ProgressSink`]: where the worker engines send progress.
//!
//! # Feature flags
//!
//! - `test-util`: the `testing` module, a scripted Ollama/OpenAI stub
//!   server on 127.0.0.1 (queued or computed replies, truncated answers,
//!   delays) and a server that hangs up mid-request, for tests of code that
//!   calls inference servers.
//!
//! This crate knows nothing about jobs, queues or workers; it uses the model
//! crate only for [`Timestamp`](semiont_jobs_model::Timestamp).
//!
//! # Offsets
//!
//! Offsets written into annotations (`TextPositionSelector.start/end`) count
//! Unicode code points, as the W3C model specifies. Rust slices by bytes;
//! convert with [`text::TextIndex`].

pub mod annotation;
mod annotation_store;
mod data_dir;
mod error;
mod fsutil;
mod id;
pub mod inference;
mod progress;
mod resource;
mod samples;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod text;

pub use annotation::{Agent, Annotation, Body, Motivation, Selector, Target};
pub use annotation_store::{AddOutcome, AnnotationStore, FsAnnotationStore};
pub use data_dir::DataDir;
pub use error::{Error, NetworkCause, Result};
pub use id::{AnnotationId, ResourceId, MAX_ID_LEN};
pub use inference::{
    Completion, CompletionRequest, DocumentBrief, InferenceClient, InferenceConfig, ModelSettings,
    OfflineInference, ResponseFormat, Task,
};
pub use progress::ProgressSink;
pub use resource::{
    FsResourceStore, MediaType, PutMode, PutOutcome, Resource, ResourceMeta, ResourceStore,
    MAX_TEXT_BYTES,
};
pub use samples::{install_samples, samples, Sample};
