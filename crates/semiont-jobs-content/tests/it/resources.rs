use std::os::unix::fs::{symlink, PermissionsExt};

use semiont_jobs_content::{
    DataDir, Error, FsResourceStore, MediaType, PutMode, PutOutcome, Resource, ResourceId,
    ResourceStore,
};

use crate::tempdir;

fn doc(id: &str, text: &str) -> Resource {
    Resource::new(
        ResourceId::parse(id).unwrap(),
        "A document",
        MediaType::Markdown,
        text,
    )
    .with_language("en")
}

#[tokio::test]
async fn create_get_list_round_trip() {
    let dir = tempdir();
    let store = DataDir::new(dir.path()).resource_store().unwrap();
    let r = doc("doc-1", "Zoë Müller lives in Kraków.");
    assert_eq!(
        store.create(&r, PutMode::CreateNew).await.unwrap(),
        PutOutcome::Created
    );
    store
        .create(&doc("doc-0", "x"), PutMode::CreateNew)
        .await
        .unwrap();
    let back = store.get(&r.id).await.unwrap();
    assert_eq!(back, r);
    let list = store.list().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["doc-0", "doc-1"]);
    assert_eq!(list[1].chars, 27);
    assert_eq!(list[1].media_type, MediaType::Markdown);
}

#[tokio::test]
async fn create_new_refuses_an_existing_id_and_overwrite_replaces() {
    let dir = tempdir();
    let store = FsResourceStore::open(dir.path().join("resources")).unwrap();
    store
        .create(&doc("doc-1", "one"), PutMode::CreateNew)
        .await
        .unwrap();
    let e = store
        .create(&doc("doc-1", "two"), PutMode::CreateNew)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(e.to_string(), "resource doc-1 already exists");
    assert_eq!(
        store
            .get(&ResourceId::parse("doc-1").unwrap())
            .await
            .unwrap()
            .text,
        "one"
    );
    assert_eq!(
        store
            .create(&doc("doc-1", "two"), PutMode::Overwrite)
            .await
            .unwrap(),
        PutOutcome::Replaced
    );
    assert_eq!(
        store
            .get(&ResourceId::parse("doc-1").unwrap())
            .await
            .unwrap()
            .text,
        "two"
    );
}

#[tokio::test]
async fn missing_resource_is_not_found_and_permanent() {
    let dir = tempdir();
    let store = FsResourceStore::open(dir.path()).unwrap();
    let e = store
        .get(&ResourceId::parse("nope").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }));
    assert_eq!(e.code(), "NOT_FOUND");
    assert!(!e.is_retryable());
}

#[test]
fn ids_are_validated() {
    for bad in [
        "",
        "../etc",
        "a/b",
        "a\\b",
        ".hidden",
        "a b",
        "a\0b",
        "a\nb",
        &"x".repeat(129),
    ] {
        let e = ResourceId::parse(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidId { .. }), "{bad:?}");
        assert_eq!(e.code(), "INVALID_INPUT");
    }
    assert!(ResourceId::parse("news-kraków-2024").is_ok());
    assert!(ResourceId::parse(&"x".repeat(128)).is_ok());
}

#[tokio::test]
async fn files_and_dirs_are_private() {
    let dir = tempdir();
    let root = dir.path().join("resources");
    let store = FsResourceStore::open(&root).unwrap();
    store
        .create(&doc("doc-1", "x"), PutMode::CreateNew)
        .await
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("doc-1.json")), 0o600);
    // Nothing is left in the staging directory.
    assert_eq!(std::fs::read_dir(root.join(".tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn symlinks_are_refused() {
    let dir = tempdir();
    let root = dir.path().join("resources");
    let store = FsResourceStore::open(&root).unwrap();
    let outside = dir.path().join("secret.json");
    std::fs::write(&outside, r#"{"id":"evil"}"#).unwrap();
    symlink(&outside, root.join("evil.json")).unwrap();
    let e = store
        .get(&ResourceId::parse("evil").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnsafePath { .. }), "{e}");
    // A symlinked store root is refused too.
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("linked");
    symlink(&real, &link).unwrap();
    assert!(matches!(
        FsResourceStore::open(&link),
        Err(Error::UnsafePath { .. })
    ));
}

#[tokio::test]
async fn corrupt_files_are_reported_and_skipped_in_lists() {
    let dir = tempdir();
    let root = dir.path().join("resources");
    let store = FsResourceStore::open(&root).unwrap();
    store
        .create(&doc("good", "x"), PutMode::CreateNew)
        .await
        .unwrap();
    std::fs::write(root.join("bad.json"), b"{not json").unwrap();
    let e = store
        .get(&ResourceId::parse("bad").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    let ids: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    assert_eq!(ids, ["good"]);
}

#[tokio::test]
async fn invalid_resources_are_rejected() {
    let dir = tempdir();
    let store = FsResourceStore::open(dir.path()).unwrap();
    let mut r = doc("doc", "x");
    r.name = "  ".into();
    assert!(matches!(
        store.create(&r, PutMode::CreateNew).await,
        Err(Error::InvalidInput(_))
    ));
    let r = doc("doc", "x").with_language("en US");
    assert!(matches!(
        store.create(&r, PutMode::CreateNew).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(MediaType::parse("text/html").is_err());
    assert_eq!(
        MediaType::parse("text/markdown; charset=utf-8").unwrap(),
        MediaType::Markdown
    );
}
