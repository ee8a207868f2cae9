use semiont_jobs_content::text::{sentences, TextIndex};
use semiont_jobs_content::{install_samples, samples, FsResourceStore, ResourceId, ResourceStore};

use crate::tempdir;

#[test]
fn six_samples_of_a_few_hundred_words_with_multibyte_names() {
    let all = samples();
    assert_eq!(all.len(), 6);
    let mut genres: Vec<&str> = all.iter().map(|s| s.genre).collect();
    genres.sort_unstable();
    assert_eq!(
        genres,
        [
            "biography",
            "company profile",
            "meeting minutes",
            "news",
            "scientific abstract",
            "travel note"
        ]
    );
    for s in all {
        assert!(ResourceId::parse(s.id).is_ok(), "{}", s.id);
        let words = s.text.split_whitespace().count();
        assert!((250..=500).contains(&words), "{} has {words} words", s.id);
        assert!(s.text.starts_with("# "), "{}", s.id);
        assert!(!sentences(s.text).is_empty());
        let _ = TextIndex::new(s.text);
    }
    let text: String = all.iter().map(|s| s.text).collect();
    for name in ["Zoë Müller", "São Paulo", "Kraków"] {
        assert!(text.contains(name), "{name}");
    }
}

#[tokio::test]
async fn samples_install_once() {
    let dir = tempdir();
    let store = FsResourceStore::open(dir.path()).unwrap();
    assert_eq!(install_samples(&store).await.unwrap(), 6);
    assert_eq!(install_samples(&store).await.unwrap(), 0);
    let r = store
        .get(&ResourceId::parse("news-helix-krakow").unwrap())
        .await
        .unwrap();
    assert_eq!(r.language.as_deref(), Some("en"));
    assert!(r.text.contains("Zoë Müller"));
    assert_eq!(store.list().await.unwrap().len(), 6);
}
