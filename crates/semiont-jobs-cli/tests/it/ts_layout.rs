//! The layout of new jobs per data directory: `init` on a directory of the
//! TypeScript package proposes its nested layout and records it, new jobs
//! follow the record, and a choice that would mix layouts is refused.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::Env;

/// The package's fixtures (`tests/fixtures/ts-package/jobs` of the workspace).
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ts-package/jobs")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The stored document of job `id` (pending).
fn pending_doc(env: &Env, id: &str) -> Value {
    let path = env.data.join("jobs/pending").join(format!("{id}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn enqueue_noop(env: &Env, extra: &[&str]) -> String {
    let mut args = extra.to_vec();
    args.extend([
        "--json", "enqueue", "custom", "--type", "noop", "--user", "u1",
    ]);
    let v: Value = serde_json::from_str(&env.ok(&args)).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn init_on_a_package_directory_proposes_nested_and_records_it() {
    let env = Env::new();
    copy_tree(&fixtures(), &env.data.join("jobs"));
    let out = env.ok(&["init"]);
    assert!(
        out.contains(
            "new jobs: nested layout (the directory holds records of the TypeScript package"
        ),
        "{out}"
    );
    let format = std::fs::read_to_string(env.data.join("jobs/format.json")).unwrap();
    assert_eq!(format.trim(), r#"{"newJobs":"nested"}"#);
    // New jobs follow the record; the package's jobs are all there.
    let id = enqueue_noop(&env, &[]);
    let doc = pending_doc(&env, &id);
    assert_eq!(doc["metadata"]["id"], id.as_str(), "{doc}");
    assert!(doc.get("id").is_none(), "{doc}");
    // 3 pending fixtures, the package's running job (an interrupted
    // attempt: requeued by the first open's recovery pass), the new one.
    let stats = env.json(&["stats"]);
    assert_eq!(
        (&stats["pending"], &stats["running"], &stats["quarantined"]),
        (&Value::from(5), &Value::from(0), &Value::from(0)),
        "{stats}"
    );
    // A flat job now would mix layouts: refused, naming the record.
    let err = env.fails(
        &[
            "--layout", "flat", "enqueue", "custom", "--type", "noop", "--user", "u1",
        ],
        2,
    );
    assert!(
        err.contains("creates nested jobs") && err.contains("would mix layouts"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Reading commands take any flag: they create nothing.
    env.ok(&["--layout", "flat", "list"]);
}

#[test]
fn a_package_directory_refuses_flat_before_anything_is_recorded() {
    let env = Env::new();
    copy_tree(&fixtures(), &env.data.join("jobs"));
    let err = env.fails(&["--layout", "flat", "init"], 2);
    assert!(
        err.contains("holds nested records") && err.contains("--layout nested"),
        "{err}"
    );
    assert!(!env.data.join("jobs/format.json").exists());
}

#[test]
fn the_layout_is_chosen_once_per_directory() {
    // Default: flat, recorded by the first command that may create jobs.
    let flat = Env::new();
    let id = enqueue_noop(&flat, &[]);
    assert_eq!(pending_doc(&flat, &id)["id"], id.as_str());
    let err = flat.fails(
        &[
            "--layout", "nested", "enqueue", "custom", "--type", "noop", "--user", "u1",
        ],
        2,
    );
    assert!(err.contains("creates flat jobs"), "{err}");
    // Asked for on an empty directory: nested from then on, flag or not.
    let nested = Env::new();
    let out = nested.ok(&["--layout", "nested", "init"]);
    assert!(
        out.contains("new jobs: nested layout (recorded in jobs/format.json)"),
        "{out}"
    );
    let id = enqueue_noop(&nested, &[]);
    assert_eq!(pending_doc(&nested, &id)["metadata"]["id"], id.as_str());
    // `work` runs nested jobs and keeps them nested.
    nested.ok(&["work", "--exit-when-idle"]);
    let done = nested.data.join("jobs/complete").join(format!("{id}.json"));
    let doc: Value = serde_json::from_slice(&std::fs::read(done).unwrap()).unwrap();
    assert_eq!(
        (doc["status"].as_str(), doc["metadata"]["attempt"].as_u64()),
        (Some("complete"), Some(1))
    );
}
