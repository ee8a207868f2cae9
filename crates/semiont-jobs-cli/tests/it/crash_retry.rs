//! Crash, retry and resume of the content workers across processes: a
//! worker killed in the middle of a job, a second worker resuming it — no
//! model call again for an entity type the first finished, no duplicate
//! annotation, no second generated document, and result counts that cover
//! both attempts. The model is a stub server on 127.0.0.1 that counts the
//! calls and whose second answer never comes, so the kill lands mid-job
//! deterministically.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs::content::testing::{Recorded, Reply, StubServer};
use serde_json::Value;

use crate::processes::WorkerProc;
use crate::support::Env;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn model_args(url: &str, types: &str) -> Vec<String> {
    [
        "--types",
        types,
        "--inference",
        "ollama",
        "--model",
        "stub",
        "--url",
        url,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[test]
fn a_detection_job_killed_mid_job_resumes_without_asking_the_model_again() {
    let rt = runtime();
    let stub = rt.block_on(StubServer::start()).unwrap();
    let env = Env::new();
    env.add_doc("Grace Hopper visited Boston.");
    let id = env.enqueue_detection("Person,Location");
    let person = r#"{"entities":[{"text":"Grace Hopper","start":0,"end":12}]}"#;
    let location = r#"{"entities":[{"text":"Boston","start":20,"end":26}]}"#;
    stub.push(Reply::ollama_chat(person));
    stub.push(Reply::ollama_chat(location).delayed(Duration::from_secs(600)));

    let args = model_args(&stub.base_url(), "detection");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = WorkerProc::start(&env, &args);
    first.wait_for("job.started", Some(&id));
    // The first answer arrived and its annotation was written; the second
    // call hangs: the job is in the middle of its second entity type.
    assert!(rt.block_on(stub.wait_for_request(Duration::from_secs(30))));
    assert!(rt.block_on(stub.wait_for_request(Duration::from_secs(30))));
    let before = env.json(&["annotations", "list", "doc"]);
    assert_eq!(before.as_array().unwrap().len(), 1, "{before}");
    // Person is checkpointed as done, with its counts.
    let mid = env.json(&["get", &id]);
    assert_eq!(
        mid["completedUnits"],
        serde_json::json!(["Person"]),
        "{mid}"
    );
    assert_eq!(mid["unitCursors"]["#totals"]["emitted"], 1, "{mid}");
    drop(first); // SIGKILL mid-job
    let calls_before = stub.requests().len();
    assert_eq!(calls_before, 2);

    // Only the unfinished type is asked for again.
    stub.push(Reply::ollama_chat(location));
    let mut second_args = args.clone();
    second_args.push("--exit-when-idle");
    let second = WorkerProc::start(&env, &second_args);
    let done = second.wait_for("job.completed", Some(&id));
    assert_eq!(done["attempt"], 2);
    assert!(second.wait_exit().success());
    let calls = stub.requests();
    assert_eq!(calls.len(), calls_before + 1, "one model call in the retry");
    let asked = calls.last().unwrap().body.to_string();
    assert!(
        asked.contains("Location") && !asked.contains("Person"),
        "{asked}"
    );

    let anns = env.json(&["annotations", "list", "doc"]);
    let anns = anns.as_array().unwrap();
    let exact: Vec<&str> = anns
        .iter()
        .filter_map(|a| a["target"]["selector"].as_array())
        .flatten()
        .filter_map(|s| s["exact"].as_str())
        .collect();
    assert_eq!(
        exact,
        ["Grace Hopper", "Boston"],
        "one annotation per mention, none twice"
    );
    assert_eq!(
        anns[0]["id"], before[0]["id"],
        "the retry wrote the same id again"
    );
    let job = env.json(&["get", &id]);
    assert_eq!(job["status"], "complete");
    assert_eq!(job["result"]["totalEmitted"], 2, "counts of both attempts");
    assert_eq!(job["result"]["totalFound"], 2);
    assert_eq!(
        job["completedUnits"],
        serde_json::json!(["Location", "Person"])
    );
}

/// The document text of a detection request (between the prompt's
/// `<<<` and `>>>` lines).
fn chunk_of(r: &Recorded) -> String {
    let prompt = r.body["messages"][1]["content"].as_str().unwrap_or("");
    let start = prompt.find("<<<\n").map_or(0, |i| i + 4);
    let end = prompt.rfind("\n>>>").unwrap_or(prompt.len());
    prompt[start..end.max(start)].to_owned()
}

/// An answer naming every "Grace Hopper" of the chunk asked about (the
/// document is ASCII, so byte offsets are character offsets).
fn hopper_finder(r: &Recorded) -> Reply {
    let chunk = chunk_of(r);
    let found: Vec<Value> = chunk
        .match_indices("Grace Hopper")
        .map(|(at, m)| serde_json::json!({"text": m, "start": at, "end": at + m.len()}))
        .collect();
    Reply::ollama_chat(&serde_json::json!({ "entities": found }).to_string())
}

#[test]
fn a_detection_job_killed_inside_a_type_resumes_from_its_last_chunk() {
    let rt = runtime();
    let stub = rt.block_on(StubServer::start()).unwrap();
    let env = Env::new();
    let text: String = (0..12)
        .map(|i| format!("Day {i}: Grace Hopper taught the compiler a new trick, and the team wrote it down.\n\n"))
        .collect();
    env.add_doc(&text);
    let id = env.enqueue_detection("Person");
    // Three chunks are answered; the fourth answer never comes.
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    stub.respond_with(move |r| {
        let reply = hopper_finder(r);
        if counter.fetch_add(1, Ordering::SeqCst) >= 3 {
            reply.delayed(Duration::from_secs(600))
        } else {
            reply
        }
    });
    let mut args = model_args(&stub.base_url(), "detection");
    args.extend(["--model-chunk-chars".to_owned(), "200".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = WorkerProc::start(&env, &args);
    first.wait_for("job.started", Some(&id));
    for _ in 0..4 {
        assert!(rt.block_on(stub.wait_for_request(Duration::from_secs(30))));
    }
    // The cursor inside Person says three chunks are done.
    let mid = env.json(&["get", &id]);
    let cursor = &mid["unitCursors"]["Person"];
    assert_eq!(cursor["chunksDone"], 3, "{mid}");
    assert_eq!(cursor["size"], 200, "{mid}");
    let done_chars = cursor["next"].as_u64().unwrap() as usize;
    assert!(done_chars > 0 && done_chars < text.len(), "{mid}");
    let emitted_before = cursor["emitted"].as_u64().unwrap();
    assert_eq!(
        env.json(&["annotations", "list", "doc"])
            .as_array()
            .unwrap()
            .len() as u64,
        emitted_before
    );
    drop(first); // SIGKILL while the fourth chunk is being asked about
    let calls_before = stub.requests().len();
    assert_eq!(calls_before, 4);

    stub.respond_with(hopper_finder);
    let mut second_args = args.clone();
    second_args.push("--exit-when-idle");
    let second = WorkerProc::start(&env, &second_args);
    let done = second.wait_for("job.completed", Some(&id));
    assert_eq!(done["attempt"], 2);
    assert!(second.wait_exit().success());
    // The retry asked only about the text after the cursor (a chunk is
    // widened by at most half the overlap to the left of it).
    let calls = stub.requests();
    let retry = &calls[calls_before..];
    assert!(!retry.is_empty());
    for q in retry {
        let chunk = chunk_of(q);
        let at = text
            .find(&chunk)
            .expect("a chunk is a piece of the document");
        assert!(
            at + 100 > done_chars,
            "asked again about text before the cursor: {chunk:?}"
        );
    }
    let job = env.json(&["get", &id]);
    assert_eq!(job["status"], "complete");
    assert_eq!(job["result"]["totalFound"], 12, "{job}");
    assert_eq!(job["result"]["totalEmitted"], 12, "counts of both attempts");
    assert_eq!(
        job["result"]["chunks"].as_u64().unwrap(),
        3 + retry.len() as u64,
        "the chunks of both attempts, the killed one not counted: {job}"
    );
    assert!(
        job.get("unitCursors")
            .is_none_or(|c| c.get("Person").is_none()),
        "{job}"
    );
    let anns = env.json(&["annotations", "list", "doc"]);
    assert_eq!(
        anns.as_array().unwrap().len(),
        12,
        "one annotation per mention"
    );
}

#[test]
fn a_generation_job_killed_mid_job_creates_one_document_when_retried() {
    let rt = runtime();
    let stub = rt.block_on(StubServer::start()).unwrap();
    let env = Env::new();
    env.add_doc("Ada Lovelace wrote about the Analytical Engine in London.");
    env.enqueue_detection("Person");
    env.ok(&[
        "work",
        "--types",
        "detection",
        "--exit-when-idle",
        "--poll-interval",
        "50",
    ]);
    let anns = env.json(&["annotations", "list", "doc"]);
    let reference = anns[0]["id"].as_str().unwrap().to_owned();
    let id = env.json(&[
        "enqueue",
        "generation",
        "--user",
        "u",
        "--reference",
        &reference,
        "--source-resource",
        "doc",
        "--title",
        "Ada Lovelace",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let doc = "# Ada Lovelace\n\nAda Lovelace wrote about the Analytical Engine.";
    stub.push(Reply::ollama_chat(doc).delayed(Duration::from_secs(600)));

    let args = model_args(&stub.base_url(), "generation");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = WorkerProc::start(&env, &args);
    first.wait_for("job.started", Some(&id));
    assert!(rt.block_on(stub.wait_for_request(Duration::from_secs(30))));
    drop(first); // SIGKILL while generating

    stub.push(Reply::ollama_chat(doc));
    let mut second_args = args.clone();
    second_args.push("--exit-when-idle");
    let second = WorkerProc::start(&env, &second_args);
    let done = second.wait_for("job.completed", Some(&id));
    assert_eq!(done["attempt"], 2);
    assert!(second.wait_exit().success());

    let job = env.json(&["get", &id]);
    assert_eq!(job["status"], "complete");
    let resources = env.json(&["resources", "list"]);
    let generated: Vec<&Value> = resources
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"].as_str().unwrap().starts_with("gen-"))
        .collect();
    assert_eq!(generated.len(), 1, "one document for the job: {resources}");
    assert_eq!(generated[0]["id"], job["result"]["resourceId"]);
    // The reference links to it exactly once.
    let reference_ann = env
        .json(&["annotations", "list", "doc"])
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == reference.as_str())
        .cloned()
        .unwrap();
    let links = reference_ann
        .to_string()
        .matches(generated[0]["id"].as_str().unwrap())
        .count();
    assert_eq!(links, 1, "{reference_ann}");
}
