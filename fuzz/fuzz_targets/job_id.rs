//! Fuzz target `job_id`: `JobId::parse` accepts only ids that are a single
//! normal path component (as `<id>.json` directly inside a directory), and
//! its error is one line whatever the input.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use semiont_jobs_model::{JobId, MAX_ID_LEN};

fuzz_target!(|data: &[u8]| {
    // JSON strings go through the same validation.
    let _ = serde_json::from_slice::<JobId>(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match JobId::parse(s) {
        Ok(id) => {
            assert_eq!(id.as_str(), s);
            assert!(!s.is_empty() && s.len() <= MAX_ID_LEN);
            assert!(!s.starts_with('.') && !s.contains(".."));
            assert!(!s.contains(['/', '\\', '\0']));
            assert!(!s.chars().any(|c| c.is_control() || c.is_whitespace()));
            let file = format!("{s}.json");
            let p = Path::new(&file);
            let comps: Vec<Component<'_>> = p.components().collect();
            assert!(matches!(comps.as_slice(), [Component::Normal(_)]), "{s:?}");
            assert_eq!(
                Path::new("/base").join(p).parent(),
                Some(Path::new("/base"))
            );
            let via_json: JobId =
                serde_json::from_value(serde_json::Value::String(s.into())).unwrap();
            assert_eq!(via_json, id);
            let _ = id.embedded_time();
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
        }
    }
});
