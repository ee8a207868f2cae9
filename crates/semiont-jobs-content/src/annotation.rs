//! W3C Web Annotation data model (JSON-LD) types: annotations, targets with
//! text selectors, and textual or resource bodies.
//!
//! Serialization follows the W3C Web Annotation Data Model:
//!
//! ```json
//! {
//!   "@context": "http://www.w3.org/ns/anno.jsonld",
//!   "type": "Annotation",
//!   "id": "ann-…",
//!   "motivation": "linking",
//!   "creator": {"id": "semiont-jobs:detection", "type": "Software", "name": "semiont-jobs entity detection"},
//!   "created": "2024-03-14T09:00:00.000Z",
//!   "target": {
//!     "source": "news-helix-krakow",
//!     "selector": [
//!       {"type": "TextPositionSelector", "start": 120, "end": 130},
//!       {"type": "TextQuoteSelector", "exact": "Zoë Müller", "prefix": "…", "suffix": "…"}
//!     ]
//!   },
//!   "body": [{"type": "TextualBody", "value": "Person", "purpose": "tagging"}]
//! }
//! ```
//!
//! `id` and `target.source` hold this store's plain ids (relative IRI
//! references); `TextPositionSelector` offsets count Unicode code points, as
//! the W3C model specifies (see [`crate::text`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use semiont_jobs_model::Timestamp;

use crate::{AnnotationId, Error, ResourceId, Result};

/// The JSON-LD context of the W3C Web Annotation model.
pub const W3C_ANNO_CONTEXT: &str = "http://www.w3.org/ns/anno.jsonld";

/// The W3C motivations, also used as body purposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Motivation {
    /// Assessing the target.
    Assessing,
    /// Bookmarking the target.
    Bookmarking,
    /// Classifying the target.
    Classifying,
    /// Commenting on the target.
    Commenting,
    /// Describing the target.
    Describing,
    /// Editing the target.
    Editing,
    /// Highlighting the target.
    Highlighting,
    /// Identifying the target.
    Identifying,
    /// Linking the target to another resource (entity references).
    Linking,
    /// Moderating the target.
    Moderating,
    /// Questioning the target.
    Questioning,
    /// Replying to the target.
    Replying,
    /// Tagging the target (entity types).
    Tagging,
}

/// Who made an annotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The agent's id, e.g. `semiont-jobs:detection` or a user id.
    pub id: String,
    /// What kind of agent.
    #[serde(rename = "type")]
    pub kind: AgentKind,
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Agent {
    /// A software agent.
    pub fn software(id: impl Into<String>, name: impl Into<String>) -> Self {
        Agent {
            id: id.into(),
            kind: AgentKind::Software,
            name: Some(name.into()),
        }
    }
}

/// The W3C agent classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentKind {
    /// A person.
    Person,
    /// An organization.
    Organization,
    /// A program.
    Software,
}

/// A W3C `TextPositionSelector`: `start` and `end` count Unicode code points
/// from the start of the text; `end` is exclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextPositionSelector {
    /// Offset of the first character.
    pub start: u64,
    /// Offset after the last character.
    pub end: u64,
}

/// A W3C `TextQuoteSelector`: the exact text, with some text before and after
/// it to tell occurrences apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextQuoteSelector {
    /// The selected text.
    pub exact: String,
    /// Text right before it.
    #[serde(default)]
    pub prefix: String,
    /// Text right after it.
    #[serde(default)]
    pub suffix: String,
}

/// A selector of a text segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Selector {
    /// By code-point offsets.
    TextPositionSelector(TextPositionSelector),
    /// By quotation.
    TextQuoteSelector(TextQuoteSelector),
}

/// What an annotation is about: a segment of a resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The resource annotated.
    pub source: ResourceId,
    /// Alternative descriptions of the same segment (position and quote).
    #[serde(default)]
    pub selector: Vec<Selector>,
}

impl Target {
    /// The position selector, if any.
    pub fn position(&self) -> Option<&TextPositionSelector> {
        self.selector.iter().find_map(|s| match s {
            Selector::TextPositionSelector(p) => Some(p),
            Selector::TextQuoteSelector(_) => None,
        })
    }

    /// The quote selector, if any.
    pub fn quote(&self) -> Option<&TextQuoteSelector> {
        self.selector.iter().find_map(|s| match s {
            Selector::TextQuoteSelector(q) => Some(q),
            Selector::TextPositionSelector(_) => None,
        })
    }
}

/// A body of an annotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Body {
    /// Text, e.g. an entity type with purpose `tagging`.
    TextualBody {
        /// The text.
        value: String,
        /// Why the body is there.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        purpose: Option<Motivation>,
        /// Its media type, e.g. `text/plain`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
        /// Its language.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    /// Another resource, e.g. a generated document with purpose `linking`.
    SpecificResource {
        /// The resource's id.
        source: String,
        /// Why the body is there.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        purpose: Option<Motivation>,
    },
}

impl Body {
    /// A `TextualBody` with purpose `tagging` (an entity type tag).
    pub fn tag(value: impl Into<String>) -> Self {
        Body::TextualBody {
            value: value.into(),
            purpose: Some(Motivation::Tagging),
            format: None,
            language: None,
        }
    }

    /// A `SpecificResource` body with purpose `linking`.
    pub fn link(source: &ResourceId) -> Self {
        Body::SpecificResource {
            source: source.to_string(),
            purpose: Some(Motivation::Linking),
        }
    }
}

/// A W3C Web Annotation.
///
/// Fields this type does not know are kept in `extra` and written back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// Always [`W3C_ANNO_CONTEXT`].
    #[serde(rename = "@context")]
    pub context: String,
    /// Always `Annotation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The annotation's id (unique within its resource).
    pub id: AnnotationId,
    /// Why it was made.
    pub motivation: Motivation,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<Agent>,
    /// When it was made.
    pub created: Timestamp,
    /// When it was last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<Timestamp>,
    /// What it is about.
    pub target: Target,
    /// What it says.
    #[serde(default)]
    pub body: Vec<Body>,
    /// Fields not known to this version.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Annotation {
    /// A new annotation with the W3C context and type, no creator and no body.
    pub fn new(
        id: AnnotationId,
        motivation: Motivation,
        target: Target,
        created: Timestamp,
    ) -> Self {
        Annotation {
            context: W3C_ANNO_CONTEXT.to_owned(),
            kind: "Annotation".to_owned(),
            id,
            motivation,
            creator: None,
            created,
            modified: None,
            target,
            body: Vec::new(),
            extra: Map::new(),
        }
    }

    /// The start offset (code points) of the position selector, used to
    /// order annotations.
    pub fn start(&self) -> Option<u64> {
        self.target.position().map(|p| p.start)
    }

    /// The entity types this annotation is tagged with (bodies with purpose
    /// `tagging`).
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.body.iter().filter_map(|b| match b {
            Body::TextualBody {
                value,
                purpose: Some(Motivation::Tagging),
                ..
            } => Some(value.as_str()),
            _ => None,
        })
    }

    /// The resources this annotation links to (`SpecificResource` bodies
    /// with purpose `linking`).
    pub fn links(&self) -> impl Iterator<Item = &str> {
        self.body.iter().filter_map(|b| match b {
            Body::SpecificResource {
                source,
                purpose: Some(Motivation::Linking),
            } => Some(source.as_str()),
            _ => None,
        })
    }

    /// Checks the fixed fields: the W3C context, `type: Annotation`, and
    /// position selectors with `start < end`.
    pub fn validate(&self) -> Result<()> {
        if self.context != W3C_ANNO_CONTEXT {
            return Err(Error::InvalidInput(format!(
                "annotation {} has @context {:?}, expected {W3C_ANNO_CONTEXT:?}",
                self.id, self.context
            )));
        }
        if self.kind != "Annotation" {
            return Err(Error::InvalidInput(format!(
                "annotation {} has type {:?}, expected \"Annotation\"",
                self.id, self.kind
            )));
        }
        if let Some(p) = self.target.position() {
            if p.start >= p.end {
                return Err(Error::InvalidInput(format!(
                    "annotation {} selects the empty range {}..{}",
                    self.id, p.start, p.end
                )));
            }
        }
        Ok(())
    }
}
