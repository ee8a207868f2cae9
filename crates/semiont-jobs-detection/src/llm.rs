//! Entity detection with a language model: the prompt, tolerant parsing of
//! the JSON answer, and validation of every span against the text (model
//! offsets are never trusted blindly).

use std::ops::Range;

use serde_json::Value;

use semiont_jobs_content::text::{is_word_char, TextIndex};
use semiont_jobs_content::{CompletionRequest, ResponseFormat};

/// Longest mention accepted from a model, in characters.
const MAX_MENTION_CHARS: usize = 200;

/// The system message of detection prompts.
const SYSTEM: &str = "You are a precise named-entity recognizer. You answer with JSON only.";

/// The request asking a model for the mentions of `entity_type` in `chunk`.
pub(crate) fn request(
    entity_type: &str,
    chunk: &str,
    temperature: f32,
    max_tokens: u32,
) -> CompletionRequest {
    let prompt = format!(
        "Find every mention of entities of type \"{entity_type}\" in the text below.\n\
         Answer with one JSON object of this form and nothing else:\n\
         {{\"entities\": [{{\"text\": \"<the mention exactly as written>\", \"start\": <offset of its first character>, \"end\": <offset after its last character>}}]}}\n\
         Offsets count Unicode characters from the start of the text, from 0. \
         List every occurrence separately. If there are none, answer {{\"entities\": []}}.\n\n\
         Text:\n<<<\n{chunk}\n>>>"
    );
    CompletionRequest::new(prompt)
        .system(SYSTEM)
        .temperature(temperature)
        .max_tokens(max_tokens)
        .format(ResponseFormat::Json)
}

/// A span as the model reported it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ModelSpan {
    pub text: String,
    pub start: Option<usize>,
    pub end: Option<usize>,
}

/// Parses a model's answer: a JSON object with an `entities` (or
/// `mentions`, `spans`, `results`) array, or a bare array, possibly inside a
/// markdown code fence or surrounded by prose. Items are objects with
/// `text` (or `exact`, `mention`, `name`, `value`) and optional `start` and
/// `end`, or plain strings. `Err` when no such JSON can be found.
pub(crate) fn parse(answer: &str) -> Result<Vec<ModelSpan>, String> {
    let value = find_json(answer).ok_or_else(|| {
        let shown: String = answer.chars().take(80).collect();
        format!("no JSON object or array in the answer {shown:?}")
    })?;
    spans_of(&value)
}

/// Parses the complete items at the start of an answer that was cut off
/// (`{"entities": [{...}, {...}, {"te`): the answer is closed after each
/// of its last `}` in turn until it parses.
pub(crate) fn parse_prefix(answer: &str) -> Option<Vec<ModelSpan>> {
    if let Ok(spans) = parse(answer) {
        return Some(spans);
    }
    let start = answer.find(['{', '['])?;
    let body = &answer[start..];
    for (end, _) in body.rmatch_indices('}').take(64) {
        for close in ["]}", "]"] {
            let candidate = format!("{}{close}", &body[..=end]);
            if let Ok(value) = serde_json::from_str::<Value>(&candidate) {
                if let Ok(spans) = spans_of(&value) {
                    return Some(spans);
                }
            }
        }
    }
    None
}

fn spans_of(value: &Value) -> Result<Vec<ModelSpan>, String> {
    let items = match value {
        Value::Array(items) => items,
        Value::Object(map) => ["entities", "mentions", "spans", "results"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_array))
            .ok_or("the JSON object has no entities array")?,
        _ => return Err("the JSON answer is neither an object nor an array".into()),
    };
    let offset = |v: Option<&Value>| -> Option<usize> {
        match v? {
            Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    Ok(items
        .iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(ModelSpan {
                text: s.clone(),
                start: None,
                end: None,
            }),
            Value::Object(o) => {
                let text = ["text", "exact", "mention", "name", "value", "entity"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(Value::as_str))?;
                Some(ModelSpan {
                    text: text.to_owned(),
                    start: offset(o.get("start")),
                    end: offset(o.get("end")),
                })
            }
            _ => None,
        })
        .collect())
}

fn find_json(answer: &str) -> Option<Value> {
    let trimmed = answer.trim();
    if let Ok(v) = serde_json::from_str(trimmed) {
        return Some(v);
    }
    // Inside a code fence or prose: try from each opening bracket to the
    // last matching closing one.
    let mut pairs = [('{', '}'), ('[', ']')];
    if trimmed.find('[') < trimmed.find('{') && trimmed.contains('[') {
        pairs.swap(0, 1);
    }
    for (open, close) in pairs {
        if let (Some(s), Some(e)) = (trimmed.find(open), trimmed.rfind(close)) {
            if s < e {
                if let Ok(v) = serde_json::from_str(&trimmed[s..=e]) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// What validation did with a model's spans.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Checked {
    /// Accepted spans, byte ranges of the chunk, sorted, not overlapping.
    pub spans: Vec<Range<usize>>,
    /// Spans whose offsets were wrong or missing and were relocated.
    pub repaired: usize,
    /// Spans dropped (text not in the chunk, empty, too long, overlapping).
    pub dropped: usize,
}

/// Checks the model's spans against `chunk`.
///
/// A span whose offsets select exactly its text is kept. A span with wrong
/// offsets is moved to the nearest unused occurrence of its text; a span
/// without offsets stands for every occurrence. Text is searched as written,
/// then case-insensitively; occurrences must start and end at word
/// boundaries. Text that does not occur is dropped. Overlaps keep the
/// longer span.
pub(crate) fn check(chunk: &str, spans: &[ModelSpan]) -> Checked {
    let index = TextIndex::new(chunk);
    let mut out = Checked::default();
    let mut taken: Vec<Range<usize>> = Vec::new();
    for span in spans {
        let exact = span.text.trim();
        if exact.is_empty() || exact.chars().count() > MAX_MENTION_CHARS {
            out.dropped += 1;
            continue;
        }
        let given = match (span.start, span.end) {
            (Some(s), Some(e)) if s < e => index.chars_to_bytes(s..e),
            (Some(s), None) => index
                .char_to_byte(s)
                .map(|b| b..b + exact.len())
                .filter(|r| r.end <= chunk.len()),
            _ => None,
        };
        if let Some(r) = &given {
            if chunk.get(r.clone()) == Some(exact) {
                taken.push(r.clone());
                continue;
            }
        }
        let occurrences = occurrences(chunk, exact);
        if occurrences.is_empty() {
            out.dropped += 1;
            continue;
        }
        out.repaired += 1;
        match span.start {
            Some(hint) => {
                let hint = index.char_to_byte(hint).unwrap_or(chunk.len());
                let best = occurrences
                    .iter()
                    .filter(|o| !taken.contains(o))
                    .min_by_key(|o| o.start.abs_diff(hint))
                    .or_else(|| occurrences.iter().min_by_key(|o| o.start.abs_diff(hint)));
                if let Some(b) = best {
                    taken.push(b.clone());
                }
            }
            None => taken.extend(occurrences),
        }
    }
    // Unique, longest first, no overlaps.
    taken.sort_by(|a, b| {
        (b.end - b.start)
            .cmp(&(a.end - a.start))
            .then(a.start.cmp(&b.start))
    });
    taken.dedup();
    let mut accepted: Vec<Range<usize>> = Vec::new();
    for r in taken {
        if accepted.iter().any(|a| a.start < r.end && r.start < a.end) {
            out.dropped += 1;
        } else {
            accepted.push(r);
        }
    }
    accepted.sort_by_key(|r| r.start);
    out.spans = accepted;
    out
}

/// Byte ranges where `needle` occurs in `hay` at word boundaries: exact
/// matches, or case-insensitive ones when there is no exact match.
fn occurrences(hay: &str, needle: &str) -> Vec<Range<usize>> {
    let bounded = |r: &Range<usize>| {
        let before_ok = !needle.starts_with(is_word_char)
            || !hay[..r.start].chars().next_back().is_some_and(is_word_char);
        let after_ok = !needle.ends_with(is_word_char)
            || !hay[r.end..].chars().next().is_some_and(is_word_char);
        before_ok && after_ok
    };
    let exact: Vec<Range<usize>> = hay
        .match_indices(needle)
        .map(|(s, m)| s..s + m.len())
        .filter(|r| bounded(r))
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    let mut found = Vec::new();
    for (start, _) in hay.char_indices() {
        let mut hi = hay[start..].chars();
        let mut end = start;
        let mut ok = true;
        for nc in needle.chars() {
            match hi.next() {
                Some(hc) if hc == nc || hc.to_lowercase().eq(nc.to_lowercase()) => {
                    end += hc.len_utf8()
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if ok && bounded(&(start..end)) {
            found.push(start..end);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(text: &str, start: Option<usize>, end: Option<usize>) -> ModelSpan {
        ModelSpan {
            text: text.into(),
            start,
            end,
        }
    }

    #[test]
    fn parses_tolerantly() {
        let want = vec![span("Zoë", Some(0), Some(3))];
        assert_eq!(
            parse(r#"{"entities":[{"text":"Zoë","start":0,"end":3}]}"#).unwrap(),
            want
        );
        assert_eq!(
            parse("```json\n[{\"exact\":\"Zoë\",\"start\":\"0\",\"end\":3}]\n```").unwrap(),
            want
        );
        assert_eq!(
            parse("Sure! {\"mentions\": [\"Zoë\"]} Hope it helps.").unwrap(),
            vec![span("Zoë", None, None)]
        );
        assert!(parse("I found Zoë and Kraków.").is_err());
        // A cut-off answer: the complete items before the cut.
        let cut = r#"{"entities": [{"text": "Zoë", "start": 0, "end": 3}, {"text": "Krak"#;
        assert!(parse(cut).is_err());
        assert_eq!(parse_prefix(cut).unwrap(), want);
        assert_eq!(
            parse_prefix(r#"[{"text": "Zoë", "start": 0, "end": 3}, {"#).unwrap(),
            want
        );
        assert_eq!(parse_prefix("{\"entities\": [{\"te"), None);
        assert!(parse(r#"{"answer": 42}"#).is_err());
    }

    #[test]
    fn checks_and_repairs_offsets() {
        let text = "Zoë Müller met Müller's team in Kraków. Zoë Müller left.";
        let c = check(
            text,
            &[
                span("Zoë Müller", Some(0), Some(10)),  // right (chars)
                span("Zoë Müller", Some(38), Some(48)), // wrong: off by two
                span("Kraków", Some(5), Some(9)),       // wrong: far off
                span("Warsaw", Some(0), Some(6)),       // not in the text
                span("kraków", None, None),             // case differs, no offsets
                span("", None, None),
            ],
        );
        let got: Vec<&str> = c.spans.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(got, ["Zoë Müller", "Kraków", "Zoë Müller"]);
        assert_eq!(c.spans[2].start, text.rfind("Zoë").unwrap());
        assert_eq!(c.repaired, 3);
        assert_eq!(c.dropped, 2); // Warsaw and the empty one; duplicates merge
                                  // Words are matched whole: "Müller" does not match inside "Müllers".
        assert!(occurrences("Müllers", "Müller").is_empty());
    }
}
