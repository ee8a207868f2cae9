//! Offline detection on the sample documents against a hand-reviewed golden
//! file.

use std::collections::{BTreeMap, BTreeSet};

use semiont_jobs_content::samples;
use semiont_jobs_detection::{Detector, Recognizer};
use semiont_jobs_model::JobId;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{assert_selectors_match, params, Fixture};

const GOLDEN: &str = include_str!("golden/offline-samples.json");

#[tokio::test]
async fn offline_detection_on_the_samples_matches_the_golden_file() {
    let fx = Fixture::new().await;
    // A custom type from a gazetteer file in <dataDir>/gazetteers/.
    std::fs::create_dir_all(fx.data.gazetteers_dir()).unwrap();
    std::fs::write(
        fx.data.gazetteers_dir().join("Crop.txt"),
        "# crops, any case\nmaize\nquinoa\npotato\n",
    )
    .unwrap();
    let recognizer = Recognizer::new()
        .with_gazetteer_dir(&fx.data.gazetteers_dir())
        .unwrap();
    let detector = Detector::offline(fx.resources.clone(), fx.annotations.clone(), recognizer);
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    let types = ["Person", "Organization", "Location", "Date", "Crop"];

    for sample in samples() {
        let job = JobId::generate();
        let result = detector
            .run(
                &job,
                &params(sample.id, &types),
                &mut |_| {},
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(result.errors, 0);
        assert_eq!(result.total_found, result.total_emitted);
        let anns = fx.annotations_of(sample.id).await;
        assert_eq!(anns.len() as u64, result.total_emitted, "{}", sample.id);

        let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for a in &anns {
            assert_selectors_match(sample.text, a);
            let tags: Vec<&str> = a.tags().collect();
            assert_eq!(tags.len(), 1);
            got.entry(tags[0].to_owned())
                .or_default()
                .insert(a.target.quote().unwrap().exact.clone());
        }
        let want = &golden["documents"][sample.id];
        for ty in types {
            let want: BTreeSet<String> = want
                .get(ty)
                .and_then(Value::as_array)
                .map(|v| v.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            let have = got.remove(ty).unwrap_or_default();
            let missing: Vec<_> = want.difference(&have).collect();
            let extra: Vec<_> = have.difference(&want).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{} {ty}: missing {missing:?}, unexpected {extra:?}",
                sample.id
            );
        }
    }

    // Specific spans, offsets in code points computed outside Rust.
    for span in golden["spans"].as_array().unwrap() {
        let resource = span["resource"].as_str().unwrap();
        let anns = fx.annotations_of(resource).await;
        let found = anns.iter().any(|a| {
            let p = a.target.position().unwrap();
            p.start == span["start"].as_u64().unwrap()
                && p.end == span["end"].as_u64().unwrap()
                && a.target.quote().unwrap().exact == span["exact"].as_str().unwrap()
                && a.tags().any(|t| t == span["type"].as_str().unwrap())
        });
        assert!(found, "no annotation for {span}");
    }
}

#[test]
fn golden_spans_are_code_points_not_bytes() {
    // The dateline "KRAKÓW" comes after "ó" in the heading: its byte offset
    // and its code-point offset differ, so the golden file tells them apart.
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    let krakow = &golden["spans"][0];
    assert_eq!(krakow["exact"], "KRAKÓW");
    let text = samples()[0].text;
    let byte = text.find("KRAKÓW").unwrap();
    assert_ne!(byte as u64, krakow["start"].as_u64().unwrap());
    assert_eq!(
        text[..byte].chars().count() as u64,
        krakow["start"].as_u64().unwrap()
    );
}
