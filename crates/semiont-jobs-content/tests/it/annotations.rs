use std::sync::Arc;

use semiont_jobs_content::annotation::{TextPositionSelector, TextQuoteSelector};
use semiont_jobs_content::text::TextIndex;
use semiont_jobs_content::{
    AddOutcome, Agent, Annotation, AnnotationId, AnnotationStore, Body, Error, FsAnnotationStore,
    Motivation, ResourceId, Selector, Target,
};
use semiont_jobs_model::Timestamp;
use serde_json::json;

use crate::tempdir;

const TEXT: &str = "Zoë Müller met Tobias Kessler in Kraków.";

fn ann(id: &str, exact: &str) -> Annotation {
    let idx = TextIndex::new(TEXT);
    let start = TEXT.find(exact).unwrap();
    let target = Target {
        source: ResourceId::parse("doc-1").unwrap(),
        selector: idx.selectors(start..start + exact.len()).unwrap(),
    };
    let mut a = Annotation::new(
        AnnotationId::parse(id).unwrap(),
        Motivation::Linking,
        target,
        Timestamp::parse("2024-03-14T09:00:00.000Z").unwrap(),
    );
    a.creator = Some(Agent::software("semiont-jobs:test", "test"));
    a.body.push(Body::tag("Person"));
    a
}

#[test]
fn serializes_as_w3c_json_ld() {
    let v = serde_json::to_value(ann("ann-1", "Zoë Müller")).unwrap();
    assert_eq!(
        v,
        json!({
            "@context": "http://www.w3.org/ns/anno.jsonld",
            "type": "Annotation",
            "id": "ann-1",
            "motivation": "linking",
            "creator": {"id": "semiont-jobs:test", "type": "Software", "name": "test"},
            "created": "2024-03-14T09:00:00.000Z",
            "target": {
                "source": "doc-1",
                "selector": [
                    {"type": "TextPositionSelector", "start": 0, "end": 10},
                    {"type": "TextQuoteSelector", "exact": "Zoë Müller", "prefix": "", "suffix": " met Tobias Kessler in Kraków."}
                ]
            },
            "body": [{"type": "TextualBody", "value": "Person", "purpose": "tagging"}]
        })
    );
    let k = serde_json::to_value(ann("ann-2", "Kraków")).unwrap();
    // Code points, not bytes: "Kraków" starts at char 33 (byte 35).
    assert_eq!(
        k["target"]["selector"][0],
        json!({"type": "TextPositionSelector", "start": 33, "end": 39})
    );
}

#[tokio::test]
async fn add_is_idempotent_and_list_is_sorted_by_offset() {
    let dir = tempdir();
    let store = FsAnnotationStore::open(dir.path().join("annotations")).unwrap();
    let resource = ResourceId::parse("doc-1").unwrap();
    assert!(store.list(&resource).await.unwrap().is_empty());
    for (id, exact) in [
        ("ann-c", "Kraków"),
        ("ann-a", "Tobias Kessler"),
        ("ann-b", "Zoë Müller"),
    ] {
        assert_eq!(
            store.add(&ann(id, exact)).await.unwrap(),
            AddOutcome::Created
        );
    }
    // Same id again, different content: first content wins.
    let mut again = ann("ann-c", "Kraków");
    again.body = vec![Body::tag("Location")];
    assert_eq!(store.add(&again).await.unwrap(), AddOutcome::AlreadyPresent);
    let list = store.list(&resource).await.unwrap();
    let exact: Vec<&str> = list
        .iter()
        .map(|a| a.target.quote().unwrap().exact.as_str())
        .collect();
    assert_eq!(exact, ["Zoë Müller", "Tobias Kessler", "Kraków"]);
    assert_eq!(list[2].tags().collect::<Vec<_>>(), ["Person"]);
    let got = store
        .get(&resource, &AnnotationId::parse("ann-a").unwrap())
        .await
        .unwrap();
    assert_eq!(got, ann("ann-a", "Tobias Kessler"));
}

#[tokio::test]
async fn concurrent_writers_of_one_id_create_it_once() {
    let dir = tempdir();
    let root = dir.path().join("annotations");
    let a = ann("ann-race", "Kraków");
    // Separate store instances (separate handles), many threads: the same
    // guarantee holds across processes, since it rests on link(2).
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = FsAnnotationStore::open(&root).unwrap().durable(false);
        let a = a.clone();
        tasks.push(tokio::spawn(async move { store.add(&a).await.unwrap() }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() == AddOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let files: Vec<_> = std::fs::read_dir(root.join("doc-1")).unwrap().collect();
    assert_eq!(files.len(), 1);
}

#[tokio::test]
async fn add_body_is_idempotent_and_serialized() {
    let dir = tempdir();
    let store = Arc::new(FsAnnotationStore::open(dir.path()).unwrap());
    let resource = ResourceId::parse("doc-1").unwrap();
    let id = AnnotationId::parse("ann-1").unwrap();
    store.add(&ann("ann-1", "Zoë Müller")).await.unwrap();
    // Many concurrent writers adding distinct bodies: none is lost.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, resource, id) = (Arc::clone(&store), resource.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let target = ResourceId::parse(&format!("gen-{i}")).unwrap();
            store
                .add_body(&resource, &id, &Body::link(&target))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    let again = Body::link(&ResourceId::parse("gen-3").unwrap());
    assert!(!store.add_body(&resource, &id, &again).await.unwrap());
    let got = store.get(&resource, &id).await.unwrap();
    assert_eq!(got.links().count(), 8);
    assert!(got.modified.is_some());
    let v = serde_json::to_value(&got).unwrap();
    assert!(v["body"]
        .as_array()
        .unwrap()
        .contains(&json!({"type": "SpecificResource", "source": "gen-3", "purpose": "linking"})));
    let missing = AnnotationId::parse("ann-missing").unwrap();
    assert!(matches!(
        store.add_body(&resource, &missing, &again).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn invalid_annotations_are_rejected() {
    let dir = tempdir();
    let store = FsAnnotationStore::open(dir.path()).unwrap();
    let mut a = ann("ann-1", "Kraków");
    a.context = "http://example.invalid/ctx".into();
    assert!(matches!(store.add(&a).await, Err(Error::InvalidInput(_))));
    let mut a = ann("ann-1", "Kraków");
    a.target.selector = vec![
        Selector::TextPositionSelector(TextPositionSelector { start: 5, end: 5 }),
        Selector::TextQuoteSelector(TextQuoteSelector {
            exact: String::new(),
            prefix: String::new(),
            suffix: String::new(),
        }),
    ];
    assert!(matches!(store.add(&a).await, Err(Error::InvalidInput(_))));
    // A foreign annotation file with an unknown field survives a read.
    let mut a = ann("ann-x", "Kraków");
    a.extra.insert(
        "rights".into(),
        json!("https://creativecommons.org/licenses/by/4.0/"),
    );
    store.add(&a).await.unwrap();
    let back = store.get(&a.target.source, &a.id).await.unwrap();
    assert_eq!(back.extra["rights"], a.extra["rights"]);
}

#[test]
fn derived_ids_are_deterministic() {
    let a = AnnotationId::derive(&["job-1", "doc-1", "Person", "0", "10"]);
    assert_eq!(
        a,
        AnnotationId::derive(&["job-1", "doc-1", "Person", "0", "10"])
    );
    assert_ne!(
        a,
        AnnotationId::derive(&["job-2", "doc-1", "Person", "0", "10"])
    );
    // Length prefixes keep part boundaries apart.
    assert_ne!(
        AnnotationId::derive(&["ab", "c"]),
        AnnotationId::derive(&["a", "bc"])
    );
    assert!(a.as_str().starts_with("ann-"));
    assert!(AnnotationId::parse(a.as_str()).is_ok());
}

const CHILD_ENV: &str = "SEMIONT_CONTENT_TEST_CHILD_DIR";
const CHILD_IDS: usize = 25;

/// Runs as a writer only when started by
/// `writers_in_separate_processes_create_each_id_once` (the variable names
/// its data dir); otherwise it has nothing to do.
#[tokio::test]
async fn child_writer() {
    let Ok(root) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = FsAnnotationStore::open(&root).unwrap();
    let mut created = 0;
    for i in 0..CHILD_IDS {
        if store
            .add(&ann(&format!("ann-{i}"), "Kraków"))
            .await
            .unwrap()
            == AddOutcome::Created
        {
            created += 1;
        }
    }
    let report = std::path::Path::new(&root).join(format!("created-{}.txt", std::process::id()));
    std::fs::write(report, created.to_string()).unwrap();
}

#[test]
fn writers_in_separate_processes_create_each_id_once() {
    let dir = tempdir();
    let root = dir.path().join("annotations");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "annotations::child_writer",
                    "--test-threads=1",
                    "-q",
                ])
                .env(CHILD_ENV, &root)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let name = entry.as_ref().unwrap().file_name().into_string().unwrap();
        if name.starts_with("created-") {
            total += std::fs::read_to_string(entry.unwrap().path())
                .unwrap()
                .parse::<usize>()
                .unwrap();
        }
    }
    assert_eq!(total, CHILD_IDS, "each id created by exactly one process");
    assert_eq!(
        std::fs::read_dir(root.join("doc-1")).unwrap().count(),
        CHILD_IDS
    );
}
