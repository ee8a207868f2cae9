//! Entity detection for semiont-jobs: find mentions of entity types in a
//! document and emit W3C linking annotations, offline or with a language
//! model.
//!
//! - [`Detector`]: the engine a `detection` job worker wraps. It takes the
//!   job id, [`DetectionParams`](semiont_jobs_model::DetectionParams), a
//!   [`ProgressSink`](semiont_jobs_content::ProgressSink) and a
//!   cancellation token, and returns a
//!   [`DetectionResult`](semiont_jobs_model::DetectionResult) or an
//!   [`Error`] that says whether a retry may help.
//! - [`Recognizer`]: the offline rule- and gazetteer-based recognizer of
//!   people, organizations, locations, dates and custom gazetteer types.
//!
//! - [`DetectionWorker`]: the detector as a `JobWorker` for the worker
//!   runtime (the only part of this crate that knows about jobs running).
//!
//! # Example
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use semiont_jobs_content::{install_samples, DataDir};
//! use semiont_jobs_detection::{Detector, Recognizer};
//! use semiont_jobs_model::{DetectionParams, JobId};
//! use tokio_util::sync::CancellationToken;
//!
//! let dir = tempfile::tempdir()?;
//! let data = DataDir::new(dir.path());
//! let resources = Arc::new(data.resource_store()?);
//! install_samples(resources.as_ref()).await?;
//! let recognizer = Recognizer::new().with_gazetteer_dir(&data.gazetteers_dir())?;
//! let detector = Detector::offline(resources, Arc::new(data.annotation_store()?), recognizer);
//! let params = DetectionParams {
//!     resource_id: "news-helix-krakow".into(),
//!     entity_types: vec!["Person".into(), "Location".into()],
//! };
//! let mut reports = Vec::new();
//! let result = detector
//!     .run(&JobId::generate(), &params, &mut |p| reports.push(p), &CancellationToken::new())
//!     .await?;
//! assert!(result.total_emitted > 0);
//! assert_eq!(reports.last().map(|p| p.processed_entity_types), Some(2));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```

mod chunking;
mod dates;
mod detector;
mod error;
mod lexicon;
mod llm;
mod recognizer;
mod tokens;
mod worker;

pub use detector::{Backend, Detector, ModelOptions, Resume, TypeCursor};
pub use error::{Error, Result};
pub use recognizer::{BuiltinType, Mention, Recognizer};
pub use worker::DetectionWorker;
