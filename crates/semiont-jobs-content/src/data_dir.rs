//! The application data root and where each store lives inside it.

use std::path::{Path, PathBuf};

use crate::{FsAnnotationStore, FsResourceStore, Result};

/// The application data root `<dataDir>`: `jobs/` (the queue's),
/// `resources/`, `annotations/` and `gazetteers/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data root at `root` (nothing is created until a store is opened).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The root itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<dataDir>/jobs`: the job queue's directory.
    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// `<dataDir>/resources`.
    pub fn resources_dir(&self) -> PathBuf {
        self.root.join("resources")
    }

    /// `<dataDir>/annotations`.
    pub fn annotations_dir(&self) -> PathBuf {
        self.root.join("annotations")
    }

    /// `<dataDir>/gazetteers`: `<Type>.txt` name lists for custom entity
    /// types.
    pub fn gazetteers_dir(&self) -> PathBuf {
        self.root.join("gazetteers")
    }

    /// Opens (creating) the resource store.
    pub fn resource_store(&self) -> Result<FsResourceStore> {
        FsResourceStore::open(self.resources_dir())
    }

    /// Opens (creating) the annotation store.
    pub fn annotation_store(&self) -> Result<FsAnnotationStore> {
        FsAnnotationStore::open(self.annotations_dir())
    }
}
