//! `format.json`: the document layout new jobs take in this jobs directory
//! (`{"newJobs": "flat"}` or `{"newJobs": "nested"}`), so that every
//! process and the CLI opening the directory agree. Optional: a directory
//! without it has not chosen yet. Jobs already stored keep their own
//! layout whatever it says.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use semiont_jobs_model::JobLayout;
use semiont_jobs_store::{Error, Result};
use serde_json::json;

use crate::error::io_err;

/// The file's name in the jobs directory.
pub(crate) const FORMAT_FILE: &str = "format.json";

/// Reads the layout recorded in `jobs/format.json` (`None` when there is
/// no file).
pub(crate) fn read(jobs: &Path) -> Result<Option<JobLayout>> {
    let path = jobs.join(FORMAT_FILE);
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", &path, e)),
    };
    let mut text = String::new();
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(|e| io_err("read", &path, e))?;
    let bad = || {
        Error::corrupt(
            path.display(),
            r#"expected {"newJobs": "flat"} or {"newJobs": "nested"}"#,
        )
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad())?;
    match value.get("newJobs").and_then(|v| v.as_str()) {
        Some(s) => s.parse().map(Some).map_err(|_| bad()),
        None => Err(bad()),
    }
}

/// Records `layout` in `jobs/format.json` (written to a temporary name,
/// synced, and renamed over the old file).
pub(crate) fn write(jobs: &Path, layout: JobLayout) -> Result<()> {
    let path = jobs.join(FORMAT_FILE);
    let staged = jobs.join(format!(".{FORMAT_FILE}.{}", std::process::id()));
    let text = format!("{}\n", json!({ "newJobs": layout.as_str() }));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&staged)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&staged, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&staged);
        io_err("write", &path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_then_read_and_bad_files_named() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read(tmp.path()).unwrap(), None);
        write(tmp.path(), JobLayout::Nested).unwrap();
        assert_eq!(read(tmp.path()).unwrap(), Some(JobLayout::Nested));
        write(tmp.path(), JobLayout::Flat).unwrap();
        assert_eq!(read(tmp.path()).unwrap(), Some(JobLayout::Flat));
        std::fs::write(tmp.path().join(FORMAT_FILE), r#"{"newJobs":"sideways"}"#).unwrap();
        let e = read(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("format.json") && e.contains("newJobs"), "{e}");
    }
}
