//! The demo, resources and annotations commands, and the detection and
//! generation workers through `work`.

use crate::support::Env;

#[test]
fn demo_runs_end_to_end_and_is_rerunnable() {
    let env = Env::new();
    let summary = env.json(&["demo"]);
    for t in ["Person", "Organization", "Location", "Date"] {
        assert!(
            summary["entitiesFound"][t].as_u64().unwrap() > 0,
            "no {t} found: {summary}"
        );
    }
    assert_eq!(summary["demoJobsByStatus"]["complete"], 9, "{summary}");
    assert!(summary["demoJobsByStatus"].get("failed").is_none());
    assert_eq!(summary["queueStats"]["failed"], 0);
    let generated = summary["generatedResources"].as_array().unwrap();
    assert!(!generated.is_empty());
    for g in generated {
        let path = g["path"].as_str().unwrap();
        assert!(std::path::Path::new(path).is_file(), "{path}");
    }
    assert_eq!(summary["samples"]["installed"], 6);

    let again = env.json(&["demo"]);
    assert_eq!(again["samples"]["reused"], 6);
    assert_eq!(again["detection"]["reused"], 6);
    assert_eq!(again["detection"]["enqueued"], 0);
    assert_eq!(again["generation"]["enqueued"], 0);
    assert_eq!(
        again["entitiesFound"], summary["entitiesFound"],
        "no duplicate annotations"
    );
    assert_eq!(again["queueStats"]["complete"], 9, "nothing ran twice");
}

#[test]
fn resources_and_annotations_through_work() {
    let env = Env::new();
    env.ok(&["init"]);
    let file = env.data.parent().unwrap().join("notes.md");
    std::fs::write(
        &file,
        "# Notes\n\nAda Lovelace met Charles Babbage in London on 5 June 1833. \
         Later she wrote about the Analytical Engine for Babbage.\n",
    )
    .unwrap();
    let added = env.json(&[
        "resources",
        "add",
        file.to_str().unwrap(),
        "--name",
        "Notes",
        "--language",
        "en",
    ]);
    assert_eq!(added["id"], "notes");
    assert_eq!(added["mediaType"], "text/markdown");
    let err = env.fails(&["resources", "add", file.to_str().unwrap()], 1);
    assert!(err.contains("notes"), "{err}");
    let list = env.json(&["resources", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let shown = env.json(&["resources", "show", "notes"]);
    assert!(shown["text"].as_str().unwrap().contains("Ada Lovelace"));
    env.fails(&["resources", "show", "../notes"], 2);

    env.ok(&[
        "enqueue",
        "detection",
        "--user",
        "u",
        "--resource",
        "notes",
        "--entity-type",
        "Person,Location,Date",
    ]);
    env.ok(&[
        "work",
        "--types",
        "detection",
        "--exit-when-idle",
        "--poll-interval",
        "50",
    ]);
    let jobs = env.json(&["list", "--type", "detection"]);
    let job = &jobs["jobs"][0];
    assert_eq!(job["status"], "complete", "{job}");
    assert!(
        job["result"]["totalEmitted"].as_u64().unwrap() >= 3,
        "{job}"
    );
    assert_eq!(job["progress"]["processedEntityTypes"], 3);
    let anns = env.json(&["annotations", "list", "notes"]);
    let exact: Vec<&str> = anns
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["target"]["selector"].as_array())
        .flatten()
        .filter_map(|s| s["exact"].as_str())
        .collect();
    for want in ["Ada Lovelace", "London", "5 June 1833"] {
        assert!(exact.contains(&want), "{want} not in {exact:?}");
    }
    assert!(env
        .ok(&["annotations", "list", "notes"])
        .contains("Ada Lovelace"));

    // Generation from one of those annotations.
    let reference = anns
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a.to_string().contains("Ada Lovelace"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&[
        "enqueue",
        "generation",
        "--user",
        "u",
        "--reference",
        &reference,
        "--source-resource",
        "notes",
        "--title",
        "Ada",
    ]);
    env.ok(&[
        "work",
        "--types",
        "generation",
        "--exit-when-idle",
        "--poll-interval",
        "50",
    ]);
    let gen = &env.json(&["list", "--type", "generation"])["jobs"][0];
    assert_eq!(gen["status"], "complete", "{gen}");
    let new_id = gen["result"]["resourceId"].as_str().unwrap();
    let doc = env.json(&["resources", "show", new_id]);
    assert!(doc["text"].as_str().unwrap().contains("Ada"));
}

#[test]
fn unreachable_inference_server_is_a_retryable_failure() {
    let env = Env::new();
    env.ok(&["init"]);
    let file = env.data.parent().unwrap().join("doc.txt");
    std::fs::write(&file, "Grace Hopper visited Boston.").unwrap();
    env.ok(&["resources", "add", file.to_str().unwrap()]);
    env.ok(&[
        "enqueue",
        "detection",
        "--user",
        "u",
        "--resource",
        "doc",
        "--entity-type",
        "Person",
        "--max-retries",
        "0",
    ]);
    // Port 9 on loopback: nothing listens, connection refused at once.
    env.ok(&[
        "work",
        "--types",
        "detection",
        "--exit-when-idle",
        "--poll-interval",
        "50",
        "--inference",
        "ollama",
        "--model",
        "m",
        "--url",
        "http://127.0.0.1:9",
    ]);
    let job = &env.json(&["list", "--type", "detection"])["jobs"][0];
    assert_eq!(job["status"], "failed");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "NETWORK_ERROR: inference request POST http://127.0.0.1:9/api/chat (model m) failed: connection refused"
        ),
        "{job}"
    );
}

#[test]
fn model_flags_size_the_requests_and_bad_values_are_usage_errors() {
    use semiont_jobs::content::testing::{Reply, StubServer};
    let env = Env::new();
    env.ok(&["init"]);
    let file = env.data.parent().unwrap().join("doc.txt");
    let text = "Grace Hopper visited Boston. She met Alan Turing there.\n\n".repeat(30);
    std::fs::write(&file, &text).unwrap();
    env.ok(&["resources", "add", file.to_str().unwrap()]);
    env.enqueue_detection("Person");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stub = rt.block_on(StubServer::start()).unwrap();
    stub.set_fallback(Reply::ollama_chat(
        r#"{"entities": [{"text": "Grace Hopper"}]}"#,
    ));
    let url = stub.base_url();
    let work = |extra: &[&str]| {
        let mut args = vec![
            "work",
            "--types",
            "detection",
            "--exit-when-idle",
            "--poll-interval",
            "50",
            "--inference",
            "ollama",
            "--model",
            "m",
            "--url",
            &url,
        ];
        args.extend_from_slice(extra);
        args.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<String>>()
    };
    let args = work(&[
        "--model-context",
        "4096",
        "--model-max-tokens",
        "300",
        "--model-chunk-chars",
        "500",
        "--model-temperature",
        "0.2",
    ]);
    env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let job = &env.json(&["list", "--type", "detection"])["jobs"][0];
    assert_eq!(job["status"], "complete", "{job}");
    assert_eq!(job["result"]["totalFound"], 30, "{job}");
    let requests = stub.requests();
    assert!(requests.len() >= 5, "{}", requests.len());
    assert_eq!(job["result"]["chunks"], requests.len());
    for r in &requests {
        let options = &r.body["options"];
        assert_eq!(
            (options["num_ctx"].as_u64(), options["num_predict"].as_u64()),
            (Some(4096), Some(300))
        );
        assert_eq!(options["temperature"], 0.2);
        let prompt = r.body["messages"][1]["content"].as_str().unwrap();
        let chunk = &prompt[prompt.find("<<<\n").unwrap() + 4..prompt.rfind("\n>>>").unwrap()];
        assert!(chunk.chars().count() <= 500, "{}", chunk.chars().count());
    }
    for (flag, value) in [
        ("--model-context", "10"),
        ("--model-max-tokens", "5000"),
        ("--model-chunk-chars", "5"),
        ("--model-temperature", "9"),
        ("--model-concurrency", "0"),
        ("--model-timeout", "0"),
    ] {
        let args = work(&[flag, value]);
        let err = env.fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
