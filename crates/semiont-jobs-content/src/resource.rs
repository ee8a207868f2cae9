//! Resources (text and markdown documents), the `ResourceStore` trait and
//! its filesystem implementation under `<dataDir>/resources/`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use semiont_jobs_model::Timestamp;

use crate::fsutil;
use crate::{Error, ResourceId, Result};

/// Largest accepted document text, in bytes (8 MiB).
pub const MAX_TEXT_BYTES: usize = 8 << 20;
const MAX_NAME_BYTES: usize = 512;
const MAX_LANGUAGE_BYTES: usize = 35;

/// The media type of a resource's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaType {
    /// `text/markdown`.
    #[serde(rename = "text/markdown")]
    Markdown,
    /// `text/plain`.
    #[serde(rename = "text/plain")]
    PlainText,
}

impl MediaType {
    /// The media type string.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Markdown => "text/markdown",
            MediaType::PlainText => "text/plain",
        }
    }

    /// Parses `text/markdown` or `text/plain` (parameters such as
    /// `; charset=utf-8` are ignored).
    pub fn parse(s: &str) -> Result<Self> {
        let base = s.split(';').next().unwrap_or("").trim();
        match base.to_ascii_lowercase().as_str() {
            "text/markdown" | "text/x-markdown" => Ok(MediaType::Markdown),
            "text/plain" => Ok(MediaType::PlainText),
            _ => Err(Error::InvalidInput(format!(
                "unsupported media type {s:?} (expected text/markdown or text/plain)"
            ))),
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document: id, name, media type, language and UTF-8 text.
///
/// Stored as one JSON file `<dataDir>/resources/<id>.json`; fields this
/// version does not know are kept in `extra`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// The resource's id.
    pub id: ResourceId,
    /// A display name (a title).
    pub name: String,
    /// The text's media type.
    pub media_type: MediaType,
    /// The text's language (BCP 47, e.g. `en`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// When the resource was created.
    pub created: Timestamp,
    /// The document text.
    pub text: String,
    /// Fields not known to this version.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Resource {
    /// A new resource created now, without a language.
    pub fn new(
        id: ResourceId,
        name: impl Into<String>,
        media_type: MediaType,
        text: impl Into<String>,
    ) -> Self {
        Resource {
            id,
            name: name.into(),
            media_type,
            language: None,
            created: Timestamp::now(),
            text: text.into(),
            extra: Map::new(),
        }
    }

    /// Sets the language.
    pub fn with_language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// The resource without its text.
    pub fn meta(&self) -> ResourceMeta {
        ResourceMeta {
            id: self.id.clone(),
            name: self.name.clone(),
            media_type: self.media_type,
            language: self.language.clone(),
            created: self.created,
            chars: self.text.chars().count() as u64,
        }
    }

    /// Checks the name, language and text size.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::InvalidInput(format!(
                "resource {} has an empty name",
                self.id
            )));
        }
        if self.name.len() > MAX_NAME_BYTES || self.name.chars().any(char::is_control) {
            return Err(Error::InvalidInput(format!(
                "resource {} has a name longer than {MAX_NAME_BYTES} bytes or with control characters",
                self.id
            )));
        }
        if let Some(lang) = &self.language {
            let ok = !lang.is_empty()
                && lang.len() <= MAX_LANGUAGE_BYTES
                && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(Error::InvalidInput(format!(
                    "resource {} has invalid language tag {lang:?}",
                    self.id
                )));
            }
        }
        if self.text.len() > MAX_TEXT_BYTES {
            return Err(Error::InvalidInput(format!(
                "resource {} text is {} bytes, more than the limit of {MAX_TEXT_BYTES}",
                self.id,
                self.text.len()
            )));
        }
        Ok(())
    }
}

/// A resource without its text, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMeta {
    /// The resource's id.
    pub id: ResourceId,
    /// Its display name.
    pub name: String,
    /// Its media type.
    pub media_type: MediaType,
    /// Its language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// When it was created.
    pub created: Timestamp,
    /// Length of the text in code points.
    pub chars: u64,
}

/// What [`ResourceStore::create`] does when the id is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PutMode {
    /// Fail with [`Error::AlreadyExists`].
    #[default]
    CreateNew,
    /// Replace the existing resource (atomically).
    Overwrite,
}

/// What [`ResourceStore::create`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The resource did not exist and was created.
    Created,
    /// An existing resource was replaced.
    Replaced,
}

/// Where documents are kept. Object-safe; implemented for `Arc<T>` and
/// `Box<T>`.
#[async_trait]
pub trait ResourceStore: fmt::Debug + Send + Sync + 'static {
    /// Stores a resource; with [`PutMode::CreateNew`] fails with
    /// [`Error::AlreadyExists`] when the id is taken.
    async fn create(&self, resource: &Resource, mode: PutMode) -> Result<PutOutcome>;

    /// Loads a resource, or [`Error::NotFound`].
    async fn get(&self, id: &ResourceId) -> Result<Resource>;

    /// Lists all resources, sorted by id. Unreadable files are skipped and
    /// logged.
    async fn list(&self) -> Result<Vec<ResourceMeta>>;
}

#[async_trait]
impl<T: ResourceStore + ?Sized> ResourceStore for Arc<T> {
    async fn create(&self, resource: &Resource, mode: PutMode) -> Result<PutOutcome> {
        (**self).create(resource, mode).await
    }
    async fn get(&self, id: &ResourceId) -> Result<Resource> {
        (**self).get(id).await
    }
    async fn list(&self) -> Result<Vec<ResourceMeta>> {
        (**self).list().await
    }
}

#[async_trait]
impl<T: ResourceStore + ?Sized> ResourceStore for Box<T> {
    async fn create(&self, resource: &Resource, mode: PutMode) -> Result<PutOutcome> {
        (**self).create(resource, mode).await
    }
    async fn get(&self, id: &ResourceId) -> Result<Resource> {
        (**self).get(id).await
    }
    async fn list(&self) -> Result<Vec<ResourceMeta>> {
        (**self).list().await
    }
}

/// A [`ResourceStore`] on the filesystem: `<root>/<id>.json` files (0600) in
/// a 0700 directory, published by temp file + rename, never following
/// symlinks.
#[derive(Clone, Debug)]
pub struct FsResourceStore {
    root: Arc<PathBuf>,
    durable: bool,
}

impl FsResourceStore {
    /// Opens (creating if needed) a store rooted at `root`, normally
    /// `<dataDir>/resources`. Writes are fsynced.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fsutil::ensure_dir(&root)?;
        fsutil::tighten_dir(&root);
        fsutil::sweep_tmp(&root);
        Ok(FsResourceStore {
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

    fn path_of(root: &Path, id: &ResourceId) -> PathBuf {
        root.join(format!("{id}.json"))
    }

    fn read(root: &Path, id: &ResourceId) -> Result<Resource> {
        let path = Self::path_of(root, id);
        let bytes = fsutil::read_file(&path)?.ok_or_else(|| Error::NotFound {
            kind: "resource",
            id: id.to_string(),
        })?;
        let resource: Resource = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if &resource.id != id {
            return Err(Error::Corrupt {
                path,
                reason: format!("it holds resource {}", resource.id),
            });
        }
        Ok(resource)
    }
}

#[async_trait]
impl ResourceStore for FsResourceStore {
    async fn create(&self, resource: &Resource, mode: PutMode) -> Result<PutOutcome> {
        resource.validate()?;
        let bytes = serde_json::to_vec_pretty(resource)
            .map_err(|e| Error::InvalidInput(format!("resource {}: {e}", resource.id)))?;
        let root = Arc::clone(&self.root);
        let durable = self.durable;
        let id = resource.id.clone();
        fsutil::blocking(move || {
            fsutil::check_dir(&root)?;
            let dest = Self::path_of(&root, &id);
            let staged = fsutil::stage(&root, &bytes, durable)?;
            match mode {
                PutMode::CreateNew => {
                    if fsutil::publish_new(staged, &dest, durable)? {
                        Ok(PutOutcome::Created)
                    } else {
                        Err(Error::AlreadyExists {
                            kind: "resource",
                            id: id.to_string(),
                        })
                    }
                }
                PutMode::Overwrite => {
                    let existed = std::fs::symlink_metadata(&dest).is_ok();
                    fsutil::publish_replace(staged, &dest, durable)?;
                    Ok(if existed {
                        PutOutcome::Replaced
                    } else {
                        PutOutcome::Created
                    })
                }
            }
        })
        .await
    }

    async fn get(&self, id: &ResourceId) -> Result<Resource> {
        let root = Arc::clone(&self.root);
        let id = id.clone();
        fsutil::blocking(move || Self::read(&root, &id)).await
    }

    async fn list(&self) -> Result<Vec<ResourceMeta>> {
        let root = Arc::clone(&self.root);
        fsutil::blocking(move || {
            let entries = std::fs::read_dir(&*root).map_err(|e| Error::io("list", &*root, e))?;
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", &*root, e))?;
                let name = entry.file_name();
                let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                    continue;
                };
                let Ok(id) = ResourceId::parse(stem) else {
                    continue;
                };
                match Self::read(&root, &id) {
                    Ok(r) => out.push(r.meta()),
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => tracing::warn!(error = %e, "skipping unreadable resource"),
                }
            }
            out.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(out)
        })
        .await
    }
}
