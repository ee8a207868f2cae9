//! Sample documents written for this project (fictional people and
//! companies), used by the demo and the tests.

use semiont_jobs_model::Timestamp;

use crate::{Error, MediaType, PutMode, Resource, ResourceId, ResourceStore, Result};

/// A sample document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Its resource id.
    pub id: &'static str,
    /// Its title.
    pub name: &'static str,
    /// What kind of text it is, e.g. `news`.
    pub genre: &'static str,
    /// Its language.
    pub language: &'static str,
    /// Its markdown text.
    pub text: &'static str,
}

impl Sample {
    /// The sample as a resource created at `created`.
    pub fn to_resource(&self, created: Timestamp) -> Resource {
        let mut r = Resource::new(
            // Sample ids are constants checked by the tests.
            ResourceId::parse(self.id).unwrap_or_else(|_| unreachable!("valid sample id")),
            self.name,
            MediaType::Markdown,
            self.text,
        )
        .with_language(self.language);
        r.created = created;
        r
    }
}

static SAMPLES: [Sample; 6] = [
    Sample {
        id: "news-helix-krakow",
        name: "Helix Dynamics to open research centre in Kraków",
        genre: "news",
        language: "en",
        text: include_str!("../samples/news-helix-krakow.md"),
    },
    Sample {
        id: "biography-tomas-ribeiro",
        name: "Tomás Ribeiro",
        genre: "biography",
        language: "en",
        text: include_str!("../samples/biography-tomas-ribeiro.md"),
    },
    Sample {
        id: "company-northwind-robotics",
        name: "Company profile: Northwind Robotics Ltd",
        genre: "company profile",
        language: "en",
        text: include_str!("../samples/company-northwind-robotics.md"),
    },
    Sample {
        id: "travel-lisbon-porto",
        name: "Three days in Lisbon and Porto",
        genre: "travel note",
        language: "en",
        text: include_str!("../samples/travel-lisbon-porto.md"),
    },
    Sample {
        id: "minutes-aurora-board",
        name: "Minutes of the board meeting of Aurora Solar Cooperative",
        genre: "meeting minutes",
        language: "en",
        text: include_str!("../samples/minutes-aurora-board.md"),
    },
    Sample {
        id: "abstract-andean-maize",
        name: "Drought resilience of maize landraces in the southern Andes",
        genre: "scientific abstract",
        language: "en",
        text: include_str!("../samples/abstract-andean-maize.md"),
    },
];

/// The sample documents.
pub fn samples() -> &'static [Sample] {
    &SAMPLES
}

/// Stores every sample that is not in `store` yet; returns how many were
/// added. Existing resources with the same ids are left alone.
pub async fn install_samples(store: &dyn ResourceStore) -> Result<usize> {
    let now = Timestamp::now();
    let mut added = 0;
    for s in samples() {
        match store.create(&s.to_resource(now), PutMode::CreateNew).await {
            Ok(_) => added += 1,
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(added)
}
