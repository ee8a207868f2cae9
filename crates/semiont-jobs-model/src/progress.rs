//! Progress and result shapes: the seed's generic progress, and the typed
//! progress and results of detection and generation jobs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The seed's generic progress report. Every field is optional; fields not
/// listed here are kept in `extra` and written at top level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Percent done, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
    /// A human-readable status line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Current step (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<u64>,
    /// Number of steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_steps: Option<u64>,
    /// Current item (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_item: Option<u64>,
    /// Number of items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<u64>,
    /// Any other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Progress {
    /// A report with only a percentage.
    pub fn percent(p: f64) -> Self {
        Progress {
            percentage: Some(p),
            ..Default::default()
        }
    }

    /// Adds a message.
    pub fn with_message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }
}

/// Checks that a progress document is a JSON object whose `percentage`, if
/// present, is a number in 0..=100 (NaN and infinities cannot be JSON).
pub fn validate_progress(value: &Value) -> Result<()> {
    let Value::Object(map) = value else {
        return Err(Error::InvalidProgress(
            "progress must be a JSON object".into(),
        ));
    };
    let depth = crate::json_depth(value);
    if depth > crate::MAX_JSON_DEPTH {
        return Err(Error::InvalidProgress(format!(
            "progress is nested {depth} levels deep, more than the limit of {}",
            crate::MAX_JSON_DEPTH
        )));
    }
    if let Some(p) = map.get("percentage") {
        let Some(n) = p.as_f64() else {
            return Err(Error::InvalidProgress(format!(
                "percentage {p} is not a number"
            )));
        };
        if !(0.0..=100.0).contains(&n) {
            return Err(Error::InvalidProgress(format!(
                "percentage {n} is outside 0..=100"
            )));
        }
    }
    Ok(())
}

/// Typed progress of a detection job (the seed's `DetectionJob.progress`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectionProgress {
    /// How many entity types the job looks for.
    pub total_entity_types: u32,
    /// How many of them are done.
    pub processed_entity_types: u32,
    /// The type being searched now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_entity_type: Option<String>,
    /// Mentions found so far.
    pub entities_found: u64,
    /// Annotations written so far.
    pub entities_emitted: u64,
    /// Chunks of the document the current type is searched in (model-based
    /// detection splits long documents; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_chunks: Option<u32>,
    /// Chunks of the current type done (answered, or counted as an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_chunks: Option<u32>,
}

/// Typed result of a detection job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectionResult {
    /// Mentions found.
    pub total_found: u64,
    /// Annotations written.
    pub total_emitted: u64,
    /// Failures that did not stop the job: entity types the offline
    /// recognizer has no rules for, or chunks whose model answer stayed
    /// unusable.
    pub errors: u64,
    /// The same failures by class (`MALFORMED_OUTPUT`, `TRUNCATED`,
    /// `UNKNOWN_ENTITY_TYPE`, ...); absent when there were none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_classes: BTreeMap<String, u64>,
    /// Chunks searched, over all entity types (model-based detection only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u64>,
    /// Model calls made, retries and re-sent smaller chunks included
    /// (model-based detection only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_calls: Option<u64>,
}

/// Stage of a generation job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenerationStage {
    /// Loading the source document and the reference.
    Fetching,
    /// Producing the text.
    Generating,
    /// Storing the new document.
    Creating,
    /// Linking the reference to the new document.
    Linking,
}

/// Typed progress of a generation job (the seed's `GenerationJob.progress`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationProgress {
    /// Current stage.
    pub stage: GenerationStage,
    /// Percent done, 0 to 100.
    pub percentage: f64,
    /// A human-readable status line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Typed result of a generation job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationResult {
    /// The generated document's id.
    pub resource_id: String,
    /// The generated document's name.
    pub resource_name: String,
    /// Whether the model's answer was cut off at the token limit (the
    /// document is kept; absent when it was not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentage_bounds() {
        assert!(validate_progress(&json!({"percentage": 0})).is_ok());
        assert!(validate_progress(&json!({"percentage": 100.0})).is_ok());
        assert!(validate_progress(&json!({"message": "hi"})).is_ok());
        for bad in [
            json!({"percentage": -1}),
            json!({"percentage": 100.5}),
            json!({"percentage": "50"}),
            json!(42),
        ] {
            let e = validate_progress(&bad).unwrap_err();
            assert!(matches!(e, Error::InvalidProgress(_)), "{bad}");
        }
        assert!(serde_json::to_value(Progress::percent(f64::NAN))
            .map(|v| v["percentage"].is_null())
            .unwrap_or(true));
    }

    #[test]
    fn detection_shapes_keep_the_seed_fields_and_add_chunks_only_when_set() {
        let seed = json!({"totalEntityTypes": 2, "processedEntityTypes": 1, "currentEntityType": "Person", "entitiesFound": 3, "entitiesEmitted": 3});
        let p: DetectionProgress = serde_json::from_value(seed.clone()).unwrap();
        assert_eq!(serde_json::to_value(&p).unwrap(), seed);
        let chunked = DetectionProgress {
            total_chunks: Some(4),
            processed_chunks: Some(1),
            ..p
        };
        let v = serde_json::to_value(&chunked).unwrap();
        assert_eq!(
            (v["totalChunks"].as_u64(), v["processedChunks"].as_u64()),
            (Some(4), Some(1))
        );
        let seed = json!({"totalFound": 3, "totalEmitted": 3, "errors": 0});
        let r: DetectionResult = serde_json::from_value(seed.clone()).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), seed);
        let r = DetectionResult {
            errors: 1,
            error_classes: [("TRUNCATED".to_owned(), 1)].into(),
            chunks: Some(3),
            model_calls: Some(5),
            ..r
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["errorClasses"], json!({"TRUNCATED": 1}));
        assert_eq!(
            (v["chunks"].as_u64(), v["modelCalls"].as_u64()),
            (Some(3), Some(5))
        );
        let g = json!({"resourceId": "gen-1", "resourceName": "N"});
        let r: GenerationResult = serde_json::from_value(g.clone()).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), g);
    }

    #[test]
    fn generic_progress_keeps_extra_fields() {
        let v = json!({"percentage": 50, "message": "m", "currentStep": 2, "totalSteps": 4, "phase": "x"});
        let p: Progress = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(p.current_step, Some(2));
        assert_eq!(p.extra["phase"], "x");
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"percentage": 50.0, "message": "m", "currentStep": 2, "totalSteps": 4, "phase": "x"})
        );
    }
}
