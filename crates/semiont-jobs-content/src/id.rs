//! Resource and annotation ids, validated because they become file names.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// Longest accepted resource or annotation id, in bytes (the job ids' limit).
pub use semiont_jobs_model::MAX_ID_LEN;

/// Ids become file names: the model's rules for such ids, with this
/// crate's error naming the kind of id.
fn validate(kind: &'static str, s: &str) -> Result<()> {
    semiont_jobs_model::check_file_name_id(s).map_err(|r| Error::InvalidId {
        kind,
        id: r.shown,
        reason: r.reason,
    })
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Box<str>);

        impl $name {
            /// Validates an id that came from outside.
            ///
            /// Rejected: empty, longer than [`MAX_ID_LEN`] bytes, containing
            /// `/`, `\`, `..`, NUL or any other control character,
            /// whitespace, or starting with `.`.
            pub fn parse(s: &str) -> Result<Self> {
                validate($kind, s)?;
                Ok($name(s.into()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// The id of a resource (a document). It is also the resource's file name
    /// under `<dataDir>/resources/`, so it is validated like a job id.
    ResourceId,
    "resource"
);

define_id!(
    /// The id of an annotation; also its file name under
    /// `<dataDir>/annotations/<resource-id>/`.
    ///
    /// Annotations emitted by the workers use deterministic ids from
    /// [`AnnotationId::derive`], so a retried job writes the same ids again.
    AnnotationId,
    "annotation"
);

/// Namespace of the name-based (v5) UUIDs behind derived ids.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d1f_3c2a_9b47_4e0c_8a55_2f0e_7d3b_19a4);

/// A name-based UUID (v5) of `parts`, each length-prefixed so that no two
/// different part lists give the same name.
pub(crate) fn derived_uuid(parts: &[&str]) -> uuid::Uuid {
    let mut name = Vec::new();
    for p in parts {
        name.extend_from_slice(&(p.len() as u64).to_be_bytes());
        name.extend_from_slice(p.as_bytes());
    }
    uuid::Uuid::new_v5(&ID_NAMESPACE, &name)
}

impl AnnotationId {
    /// A deterministic id `ann-<uuid>` for the given parts (e.g. job id,
    /// resource id, entity type, start and end offsets): the same parts
    /// always give the same id, different parts practically never do.
    pub fn derive(parts: &[&str]) -> Self {
        AnnotationId(format!("ann-{}", derived_uuid(parts)).into_boxed_str())
    }
}

impl ResourceId {
    /// A deterministic id `<prefix>-<uuid>` for the given parts.
    ///
    /// `prefix` must itself be a valid id of at most 80 bytes.
    pub fn derive(prefix: &str, parts: &[&str]) -> Result<Self> {
        if prefix.len() > 80 {
            return Err(Error::InvalidInput(format!(
                "id prefix {prefix:?} is longer than 80 bytes"
            )));
        }
        ResourceId::parse(&format!("{prefix}-{}", derived_uuid(parts)))
    }
}
