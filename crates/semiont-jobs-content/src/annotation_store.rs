//! The `AnnotationStore` trait and its filesystem implementation: one JSON
//! file per annotation under `<dataDir>/annotations/<resource-id>/`,
//! created without ever replacing (idempotent by id, safe across processes).

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use semiont_jobs_model::Timestamp;

use crate::annotation::{Annotation, Body};
use crate::fsutil;
use crate::{AnnotationId, Error, ResourceId, Result};

/// What [`AnnotationStore::add`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The annotation was written.
    Created,
    /// An annotation with this id was already stored for the resource; it
    /// was left as it is.
    AlreadyPresent,
}

/// Where annotations are kept, grouped by the resource they target.
/// Object-safe; implemented for `Arc<T>` and `Box<T>`.
#[async_trait]
pub trait AnnotationStore: fmt::Debug + Send + Sync + 'static {
    /// Stores an annotation of `annotation.target.source` unless one with the
    /// same id is there already. Idempotent: of concurrent writers of one id,
    /// in any processes, exactly one gets [`AddOutcome::Created`] and the
    /// first content wins.
    async fn add(&self, annotation: &Annotation) -> Result<AddOutcome>;

    /// Loads one annotation of a resource, or [`Error::NotFound`].
    async fn get(&self, resource: &ResourceId, id: &AnnotationId) -> Result<Annotation>;

    /// All annotations of a resource, ordered by start offset (then end
    /// offset, then id; annotations without a position selector last).
    /// Unreadable files are skipped and logged.
    async fn list(&self, resource: &ResourceId) -> Result<Vec<Annotation>>;

    /// Appends `body` to an annotation unless an equal body is there, and
    /// sets its `modified` time. Returns whether the body was added.
    /// Read-modify-write is serialized across processes.
    async fn add_body(&self, resource: &ResourceId, id: &AnnotationId, body: &Body)
        -> Result<bool>;
}

macro_rules! forward_annotation_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: AnnotationStore + ?Sized> AnnotationStore for $ty {
            async fn add(&self, annotation: &Annotation) -> Result<AddOutcome> {
                (**self).add(annotation).await
            }
            async fn get(&self, resource: &ResourceId, id: &AnnotationId) -> Result<Annotation> {
                (**self).get(resource, id).await
            }
            async fn list(&self, resource: &ResourceId) -> Result<Vec<Annotation>> {
                (**self).list(resource).await
            }
            async fn add_body(
                &self,
                resource: &ResourceId,
                id: &AnnotationId,
                body: &Body,
            ) -> Result<bool> {
                (**self).add_body(resource, id, body).await
            }
        }
    };
}

forward_annotation_store!(Arc<T>);
forward_annotation_store!(Box<T>);

/// An [`AnnotationStore`] on the filesystem.
///
/// Layout: `<root>/<resource-id>/<annotation-id>.json` (files 0600,
/// directories 0700), staged under `<root>/.tmp/`. New annotations are
/// published with a hard link, which fails rather than replaces, so
/// concurrent writers of the same deterministic id never duplicate or
/// clobber each other. Updates ([`AnnotationStore::add_body`]) hold an
/// exclusive `flock` on `<root>/<resource-id>/.lock` and replace the file
/// atomically by rename. Symlinks are never followed.
#[derive(Clone, Debug)]
pub struct FsAnnotationStore {
    root: Arc<PathBuf>,
    durable: bool,
}

impl FsAnnotationStore {
    /// Opens (creating if needed) a store rooted at `root`, normally
    /// `<dataDir>/annotations`. Writes are fsynced.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fsutil::ensure_dir(&root)?;
        fsutil::tighten_dir(&root);
        fsutil::sweep_tmp(&root);
        Ok(FsAnnotationStore {
            root: Arc::new(root),
            durable: true,
        })
    }

    /// Whether writes are fsynced (file and directory) before they return
    /// (default `true`).
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file_of(root: &Path, resource: &ResourceId, id: &AnnotationId) -> PathBuf {
        root.join(resource.as_str()).join(format!("{id}.json"))
    }

    fn read(root: &Path, resource: &ResourceId, id: &AnnotationId) -> Result<Annotation> {
        let path = Self::file_of(root, resource, id);
        let not_found = || Error::NotFound {
            kind: "annotation",
            id: format!("{resource}/{id}"),
        };
        let dir = root.join(resource.as_str());
        if !fsutil::dir_exists(&dir)? {
            return Err(not_found());
        }
        let bytes = fsutil::read_file(&path)?.ok_or_else(not_found)?;
        let ann: Annotation = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if &ann.id != id || &ann.target.source != resource {
            return Err(Error::Corrupt {
                path,
                reason: format!(
                    "it holds annotation {} of resource {}",
                    ann.id, ann.target.source
                ),
            });
        }
        Ok(ann)
    }

    fn encode(ann: &Annotation) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(ann)
            .map_err(|e| Error::InvalidInput(format!("annotation {}: {e}", ann.id)))
    }
}

#[async_trait]
impl AnnotationStore for FsAnnotationStore {
    async fn add(&self, annotation: &Annotation) -> Result<AddOutcome> {
        annotation.validate()?;
        let bytes = Self::encode(annotation)?;
        let root = Arc::clone(&self.root);
        let durable = self.durable;
        let resource = annotation.target.source.clone();
        let id = annotation.id.clone();
        fsutil::blocking(move || {
            fsutil::check_dir(&root)?;
            let dir = root.join(resource.as_str());
            fsutil::ensure_dir(&dir)?;
            let dest = Self::file_of(&root, &resource, &id);
            let staged = fsutil::stage(&root, &bytes, durable)?;
            Ok(if fsutil::publish_new(staged, &dest, durable)? {
                AddOutcome::Created
            } else {
                AddOutcome::AlreadyPresent
            })
        })
        .await
    }

    async fn get(&self, resource: &ResourceId, id: &AnnotationId) -> Result<Annotation> {
        let root = Arc::clone(&self.root);
        let (resource, id) = (resource.clone(), id.clone());
        fsutil::blocking(move || Self::read(&root, &resource, &id)).await
    }

    async fn list(&self, resource: &ResourceId) -> Result<Vec<Annotation>> {
        let root = Arc::clone(&self.root);
        let resource = resource.clone();
        fsutil::blocking(move || {
            let dir = root.join(resource.as_str());
            if !fsutil::dir_exists(&dir)? {
                return Ok(Vec::new());
            }
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
                let name = entry.file_name();
                let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                    continue;
                };
                let Ok(id) = AnnotationId::parse(stem) else {
                    continue;
                };
                match Self::read(&root, &resource, &id) {
                    Ok(a) => out.push(a),
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => tracing::warn!(error = %e, "skipping unreadable annotation"),
                }
            }
            out.sort_by(|a, b| {
                let key = |x: &Annotation| {
                    let p = x.target.position();
                    (
                        p.map_or(u64::MAX, |p| p.start),
                        p.map_or(u64::MAX, |p| p.end),
                    )
                };
                key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
            });
            Ok(out)
        })
        .await
    }

    async fn add_body(
        &self,
        resource: &ResourceId,
        id: &AnnotationId,
        body: &Body,
    ) -> Result<bool> {
        let root = Arc::clone(&self.root);
        let durable = self.durable;
        let (resource, id, body) = (resource.clone(), id.clone(), body.clone());
        fsutil::blocking(move || {
            let dir = root.join(resource.as_str());
            if !fsutil::dir_exists(&dir)? {
                return Err(Error::NotFound {
                    kind: "annotation",
                    id: format!("{resource}/{id}"),
                });
            }
            let lock_path = dir.join(".lock");
            let lock = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&lock_path)
                .map_err(|e| Error::io("open", &lock_path, e))?;
            // Released when `lock` is dropped, or by the kernel if we die.
            lock.lock().map_err(|e| Error::io("lock", &lock_path, e))?;
            let mut ann = Self::read(&root, &resource, &id)?;
            if ann.body.contains(&body) {
                return Ok(false);
            }
            ann.body.push(body);
            ann.modified = Some(Timestamp::now());
            let bytes = Self::encode(&ann)?;
            let staged = fsutil::stage(&root, &bytes, durable)?;
            fsutil::publish_replace(staged, &Self::file_of(&root, &resource, &id), durable)?;
            drop(lock);
            Ok(true)
        })
        .await
    }
}
