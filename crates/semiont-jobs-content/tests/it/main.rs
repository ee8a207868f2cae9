//! Integration tests of semiont-jobs-content.

mod annotations;
mod inference;
mod offline;
mod resources;
mod samples;

/// A fresh temp dir for one test.
pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}
