use semiont_jobs_content::inference::render_document;
use semiont_jobs_content::{
    CompletionRequest, DocumentBrief, InferenceClient, OfflineInference, ResourceId,
    ResponseFormat, Task,
};

fn brief() -> DocumentBrief {
    DocumentBrief {
        title: "Zoë Müller".into(),
        subject: "Zoë Müller".into(),
        entity_types: vec!["Person".into()],
        language: "en".into(),
        instructions: Some("Focus on her career.".into()),
        source_id: Some(ResourceId::parse("news-helix-krakow").unwrap()),
        source_name: "Helix Dynamics to open research centre in Kraków".into(),
        context: "Construction begins in June.\n\n\"Kraków has talent,\" said Zoë Müller, chief executive of Helix Dynamics. Müller looked at other sites.".into(),
        mentions: vec![
            "\"Kraków has talent,\" said Zoë Müller, chief executive of Helix Dynamics.".into(),
            "Helix Dynamics was founded in 2011 by Zoë Müller and Tobias Kessler.".into(),
        ],
    }
}

#[tokio::test]
async fn generates_a_readable_document_deterministically() {
    let req = CompletionRequest::new("ignored by the offline client")
        .task(Task::GenerateDocument(brief()));
    let a = OfflineInference::new().complete(&req).await.unwrap();
    let b = OfflineInference::new().complete(&req).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.text, render_document(&brief()));
    let doc = a.text;
    assert!(doc.starts_with("# Zoë Müller\n"), "{doc}");
    assert!(
        doc.contains("## Summary\n\nConstruction begins in June. \"Kraków has talent,\" said Zoë Müller, chief executive of Helix Dynamics. Müller looked at other sites.\n"),
        "{doc}"
    );
    assert!(doc.contains("## Mentions in the source\n\n- Helix Dynamics was founded in 2011 by Zoë Müller and Tobias Kessler.\n"), "{doc}");
    assert!(
        doc.contains("## Requested focus\n\nFocus on her career."),
        "{doc}"
    );
    assert!(
        doc.contains("[Helix Dynamics to open research centre in Kraków](news-helix-krakow)"),
        "{doc}"
    );
}

#[test]
fn headings_follow_the_language() {
    let mut b = brief();
    b.language = "de-DE".into();
    let doc = render_document(&b);
    assert!(doc.contains("## Zusammenfassung"), "{doc}");
    assert!(doc.contains("## Quelle"), "{doc}");
}

#[tokio::test]
async fn other_prompts_get_extractive_or_empty_json_answers() {
    let client = OfflineInference::new();
    let text = client
        .complete(&CompletionRequest::new(
            "First sentence. Second one! Third? Fourth.",
        ))
        .await
        .unwrap();
    assert_eq!(text.text, "First sentence. Second one! Third?");
    let json = client
        .complete(&CompletionRequest::new("Give JSON").format(ResponseFormat::Json))
        .await
        .unwrap();
    assert_eq!(json.text, "{}");
    let short = client
        .complete(&CompletionRequest::new("one two three four five.").max_tokens(2))
        .await
        .unwrap();
    assert_eq!(short.text, "one two");
    assert!(short.truncated);
}
