//! The security pass: files 0600 and directories 0700 (jobs, resources,
//! annotations); no symlink followed anywhere inside the data directory;
//! ids that can never name a path outside their directory; API keys never
//! shown in debug output (the CLI test `hostile::api_key_*` checks job
//! files and logs end to end).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path};

use proptest::prelude::*;
use semiont_jobs_content::annotation::{Motivation, TextPositionSelector};
use semiont_jobs_content::inference::InferenceConfig;
use semiont_jobs_content::{
    Annotation, AnnotationId, AnnotationStore, Body, FsAnnotationStore, FsResourceStore, MediaType,
    PutMode, Resource, ResourceId, ResourceStore, Selector, Target,
};
use semiont_jobs_model::{JobId, Timestamp};
use semiont_jobs_queue::ErrorKind;
use semiont_jobs_store_fs::{FsStore, OpenError};
use serde_json::json;

use crate::support::{self, file_name, fresh, queue_at};

/// Every directory under `root` is 0700 and every regular file 0600
/// (`root` itself included); returns how many entries were checked.
fn assert_private(root: &Path) -> usize {
    let mut checked = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let m = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(
            m.mode() & 0o777,
            0o700,
            "{} is a 0700 directory",
            dir.display()
        );
        checked += 1;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            if m.is_dir() {
                stack.push(path);
            } else {
                assert!(m.is_file(), "{} is a regular file", path.display());
                assert_eq!(m.mode() & 0o777, 0o600, "{} is 0600", path.display());
                checked += 1;
            }
        }
    }
    checked
}

/// A file outside the data dir whose content must never change.
fn sentinel(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join("sentinel");
    let content = b"do not touch".to_vec();
    std::fs::write(&path, &content).unwrap();
    (path, content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_dir_is_0700_and_every_file_0600_after_a_full_workload() {
    let (_tmp, dir) = fresh().await;
    // A directory someone loosened, and a bad file dropped in.
    std::fs::set_permissions(dir.join("failed"), std::fs::Permissions::from_mode(0o777)).unwrap();
    // (0600 like a job file: a file dropped in by hand keeps its own mode
    // in quarantine/, which only the 0700 directory protects.)
    let junk = dir.join("pending").join(file_name(&JobId::generate()));
    std::fs::write(&junk, b"junk").unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let q = queue_at(&dir).await;
    q.register_worker("w").await.unwrap();
    for i in 0..6 {
        q.create_job(semiont_jobs_model::NewJob::custom("noop", "u", json!({ "i": i })).unwrap())
            .await
            .unwrap();
    }
    for i in 0..4 {
        let job = q.claim_next_job("noop", "w").await.unwrap().unwrap();
        match i {
            0 => drop(q.complete_job_at(&job.id, job.attempt, ()).await.unwrap()),
            1 => drop(
                q.fail_job_at(
                    &job.id,
                    job.attempt,
                    semiont_jobs_queue::JobFailure::permanent("x"),
                )
                .await
                .unwrap(),
            ),
            2 => drop(q.cancel_job(&job.id).await.unwrap()),
            _ => drop(
                q.update_job_progress_at(&job.id, job.attempt, json!({"percentage": 1}))
                    .await
                    .unwrap(),
            ),
        }
    }
    assert_eq!(q.get_stats().await.unwrap().unreadable, 1);
    let n = assert_private(&dir);
    assert!(
        n > 70,
        "checked {n} entries (dirs, jobs, locks, quarantine)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_and_annotation_stores_are_0700_and_0600() {
    let tmp = support::tempdir();
    let res = FsResourceStore::open(tmp.path().join("resources")).unwrap();
    let id = ResourceId::parse("doc-1").unwrap();
    res.create(
        &Resource::new(
            id.clone(),
            "Doc",
            MediaType::PlainText,
            "Ada Lovelace wrote.",
        ),
        PutMode::CreateNew,
    )
    .await
    .unwrap();
    let ann = FsAnnotationStore::open(tmp.path().join("annotations")).unwrap();
    let a = annotation(&id, "ann-1");
    ann.add(&a).await.unwrap();
    ann.add_body(&id, &a.id, &Body::tag("Person"))
        .await
        .unwrap();
    assert!(assert_private(&tmp.path().join("resources")) >= 2);
    assert!(assert_private(&tmp.path().join("annotations")) >= 3);
}

fn annotation(resource: &ResourceId, id: &str) -> Annotation {
    Annotation::new(
        AnnotationId::parse(id).unwrap(),
        Motivation::Linking,
        Target {
            source: resource.clone(),
            selector: vec![Selector::TextPositionSelector(TextPositionSelector {
                start: 0,
                end: 3,
            })],
        },
        Timestamp::now(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_directory_planted_as_a_symlink_is_refused_at_open() {
    for sub in [
        "pending",
        "running",
        "complete",
        "failed",
        "cancelled",
        "tmp",
        "quarantine",
        "workers",
        "locks",
    ] {
        let tmp = support::tempdir();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let dir = tmp.path().join("jobs");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join(sub)).unwrap();
        let err = FsStore::open(&dir, support::opts()).await.unwrap_err();
        assert!(matches!(err, OpenError::Symlink { .. }), "{sub}: {err}");
        assert!(err.to_string().contains(sub), "{sub}: {err}");
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "{sub}: nothing written outside"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_files_planted_as_symlinks_are_never_followed() {
    for name in ["stripe-07", "recovery.lock"] {
        let (tmp, dir) = fresh().await;
        let (target, content) = sentinel(tmp.path());
        let lock = dir.join("locks").join(name);
        std::fs::remove_file(&lock).unwrap();
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let err = FsStore::open(&dir, support::opts()).await.unwrap_err();
        assert!(matches!(err, OpenError::Symlink { .. }), "{name}: {err}");
        assert_eq!(std::fs::read(&target).unwrap(), content);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_lock_file_planted_as_a_symlink_is_refused() {
    let (tmp, dir) = fresh().await;
    let (target, content) = sentinel(tmp.path());
    std::os::unix::fs::symlink(&target, dir.join("workers").join("w.lock")).unwrap();
    let q = queue_at(&dir).await;
    let e = q.register_worker("w").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    let e = q.unregister_worker("w").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_in_staging_are_removed_not_followed() {
    let (tmp, dir) = fresh().await;
    let (target, content) = sentinel(tmp.path());
    let outside = tmp.path().join("outside-dir");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"keep").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("tmp").join("evil-file")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("tmp").join("123-evil")).unwrap();
    let q = queue_at(&dir).await;
    assert_eq!(q.get_stats().await.unwrap().total(), 0);
    assert_eq!(std::fs::read(&target).unwrap(), content);
    assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_swapped_for_a_symlink_after_create_is_never_read_through() {
    let (tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    let job = q
        .create_job(semiont_jobs_model::NewJob::custom("noop", "u", json!({})).unwrap())
        .await
        .unwrap();
    // An attacker replaces the job file by a symlink to a forged job.
    let forged = {
        let mut f = job.clone();
        f.user_id = "attacker".into();
        f
    };
    let target = tmp.path().join("forged.json");
    std::fs::write(&target, forged.to_json()).unwrap();
    let path = dir.join("pending").join(file_name(&job.id));
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let e = q.get_job(&job.id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.to_string().contains("symlink"), "{e}");
    q.register_worker("w").await.unwrap();
    assert!(q.claim_next_job("noop", "w").await.unwrap().is_none());
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "moved to quarantine"
    );
    assert_eq!(std::fs::read(&target).unwrap(), forged.to_json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_store_never_follows_a_planted_symlink() {
    let tmp = support::tempdir();
    let root = tmp.path().join("resources");
    let store = FsResourceStore::open(&root).unwrap().durable(false);
    let (target, content) = sentinel(tmp.path());
    let id = ResourceId::parse("doc-x").unwrap();
    std::os::unix::fs::symlink(&target, root.join("doc-x.json")).unwrap();
    assert!(
        store.get(&id).await.is_err(),
        "a symlinked resource is not read"
    );
    let r = Resource::new(id.clone(), "X", MediaType::PlainText, "text");
    let e = store.create(&r, PutMode::CreateNew).await.unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), content);
    // Overwrite replaces the link itself, never its target.
    store.create(&r, PutMode::Overwrite).await.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), content);
    let m = std::fs::symlink_metadata(root.join("doc-x.json")).unwrap();
    assert!(m.is_file() && m.mode() & 0o777 == 0o600);
    assert_eq!(store.get(&id).await.unwrap().text, "text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotation_store_never_follows_a_planted_symlink() {
    let tmp = support::tempdir();
    let root = tmp.path().join("annotations");
    let store = FsAnnotationStore::open(&root).unwrap().durable(false);
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let res = ResourceId::parse("doc-y").unwrap();
    // The resource's annotation directory is a symlink to elsewhere.
    std::os::unix::fs::symlink(&outside, root.join("doc-y")).unwrap();
    let a = annotation(&res, "ann-y");
    assert!(store.add(&a).await.is_err());
    assert!(store.list(&res).await.is_err());
    assert!(store.get(&res, &a.id).await.is_err());
    assert!(store.add_body(&res, &a.id, &Body::tag("T")).await.is_err());
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    // A symlinked annotation file inside a real directory.
    let res2 = ResourceId::parse("doc-z").unwrap();
    let a2 = annotation(&res2, "ann-z");
    store.add(&annotation(&res2, "ann-other")).await.unwrap();
    let (target, content) = sentinel(tmp.path());
    std::os::unix::fs::symlink(&target, root.join("doc-z").join("ann-z.json")).unwrap();
    assert!(store.get(&res2, &a2.id).await.is_err());
    assert_eq!(
        store.add(&a2).await.unwrap(),
        semiont_jobs_content::AddOutcome::AlreadyPresent
    );
    assert!(store
        .add_body(&res2, &a2.id, &Body::tag("T"))
        .await
        .is_err());
    assert_eq!(std::fs::read(&target).unwrap(), content);
    // The lock file planted as a symlink is refused too.
    let _ = std::fs::remove_file(root.join("doc-z").join(".lock"));
    std::os::unix::fs::symlink(&target, root.join("doc-z").join(".lock")).unwrap();
    assert!(store
        .add_body(
            &res2,
            &AnnotationId::parse("ann-other").unwrap(),
            &Body::tag("T")
        )
        .await
        .is_err());
    assert_eq!(std::fs::read(&target).unwrap(), content);
}

#[test]
fn api_keys_never_show_in_debug_output() {
    let secret = "sk-test-0123456789-very-secret";
    let config = InferenceConfig::from_lookup(|k| match k {
        "SEMIONT_INFERENCE" => Some("openai".into()),
        "OPENAI_API_KEY" => Some(secret.into()),
        "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1".into()),
        _ => None,
    })
    .unwrap();
    let shown = format!("{config:?} {config:#?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains("very-secret"), "{shown}");
}

/// Whether `name`, used as `<dir>/<name>.json`, stays a single file name
/// directly inside `<dir>`.
fn stays_inside(name: &str) -> bool {
    let file = format!("{name}.json");
    let p = Path::new(&file);
    let mut comps = p.components();
    matches!(comps.next(), Some(Component::Normal(_)))
        && comps.next().is_none()
        && Path::new("/base").join(p).parent() == Some(Path::new("/base"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn accepted_ids_never_name_a_path_outside_their_directory(
        s in prop_oneof![
            "\\PC{0,40}",
            "[./\\\\a-z\u{0}-\u{1f}]{0,12}",
            "(\\.\\./|/|\\\\|job-)*[a-z.]{0,6}",
        ]
    ) {
        if JobId::parse(&s).is_ok() {
            prop_assert!(stays_inside(&s), "job id {s:?}");
        }
        if ResourceId::parse(&s).is_ok() {
            prop_assert!(stays_inside(&s), "resource id {s:?}");
        }
        if AnnotationId::parse(&s).is_ok() {
            prop_assert!(stays_inside(&s), "annotation id {s:?}");
        }
    }
}
