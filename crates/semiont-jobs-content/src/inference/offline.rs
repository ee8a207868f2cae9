//! The offline inference client: deterministic, no network. Writes documents
//! with an extractive template; answers other prompts extractively.

use async_trait::async_trait;

use super::{Completion, CompletionRequest, DocumentBrief, InferenceClient, ResponseFormat, Task};
use crate::text::sentences;
use crate::Result;

/// Model name reported by [`OfflineInference`].
const OFFLINE_MODEL: &str = "offline-extractive-v1";
/// Sentences of context in a generated summary.
const SUMMARY_SENTENCES: usize = 3;
/// Mentions listed in a generated document.
const MAX_MENTIONS: usize = 8;

/// A deterministic [`InferenceClient`] that needs no model: the same
/// request always gives the same answer.
///
/// - A request with [`Task::GenerateDocument`] is answered with
///   [`render_document`]: a markdown document with a title, a summary of the
///   context, the source's sentences mentioning the subject, and a citation
///   of the source.
/// - Any other text request is answered with the first sentences of its
///   prompt; any other JSON request with `{}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OfflineInference;

impl OfflineInference {
    /// The offline client.
    pub fn new() -> Self {
        OfflineInference
    }
}

#[async_trait]
impl InferenceClient for OfflineInference {
    fn describe(&self) -> String {
        format!("offline ({OFFLINE_MODEL})")
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion> {
        let text = match (&request.task, request.format) {
            (Some(Task::GenerateDocument(brief)), _) => render_document(brief),
            (None, ResponseFormat::Json) => "{}".to_owned(),
            (None, ResponseFormat::Text) => {
                let prompt = &request.prompt;
                sentences(prompt)
                    .into_iter()
                    .take(SUMMARY_SENTENCES)
                    .map(|r| clean_sentence(&prompt[r]))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let (text, truncated) = limit_words(text, request.max_tokens as usize);
        Ok(Completion {
            text,
            model: OFFLINE_MODEL.to_owned(),
            truncated,
        })
    }
}

/// Cuts `text` after `max` whitespace-separated words (a rough token count).
fn limit_words(text: String, max: usize) -> (String, bool) {
    let mut words = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_word = false;
        } else if !in_word {
            in_word = true;
            words += 1;
            if words > max {
                return (text[..i].trim_end().to_owned(), true);
            }
        }
    }
    (text, false)
}

/// Section headings of a generated document in one language.
struct Headings {
    summary: &'static str,
    mentions: &'static str,
    focus: &'static str,
    source: &'static str,
    generated_from: &'static str,
    cited: &'static str,
    no_context: &'static str,
}

fn headings(language: &str) -> Headings {
    let primary = language
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match primary.as_str() {
        "de" => Headings {
            summary: "Zusammenfassung",
            mentions: "Erwähnungen in der Quelle",
            focus: "Gewünschter Schwerpunkt",
            source: "Quelle",
            generated_from: "Erstellt aus",
            cited: "zur Referenz",
            no_context: "Die Quelle enthält keinen weiteren Kontext.",
        },
        "fr" => Headings {
            summary: "Résumé",
            mentions: "Mentions dans la source",
            focus: "Orientation demandée",
            source: "Source",
            generated_from: "Généré à partir de",
            cited: "pour la référence",
            no_context: "La source ne donne pas d'autre contexte.",
        },
        "es" => Headings {
            summary: "Resumen",
            mentions: "Menciones en la fuente",
            focus: "Enfoque solicitado",
            source: "Fuente",
            generated_from: "Generado a partir de",
            cited: "para la referencia",
            no_context: "La fuente no ofrece más contexto.",
        },
        "pt" => Headings {
            summary: "Resumo",
            mentions: "Menções na fonte",
            focus: "Foco pedido",
            source: "Fonte",
            generated_from: "Gerado a partir de",
            cited: "para a referência",
            no_context: "A fonte não oferece mais contexto.",
        },
        "pl" => Headings {
            summary: "Streszczenie",
            mentions: "Wzmianki w źródle",
            focus: "Żądany zakres",
            source: "Źródło",
            generated_from: "Wygenerowano z",
            cited: "dla odniesienia",
            no_context: "Źródło nie podaje dalszego kontekstu.",
        },
        _ => Headings {
            summary: "Summary",
            mentions: "Mentions in the source",
            focus: "Requested focus",
            source: "Source",
            generated_from: "Generated from",
            cited: "for the reference",
            no_context: "The source gives no further context.",
        },
    }
}

/// One line of prose from a sentence of markdown: list, heading and quote
/// markers removed, whitespace collapsed.
fn clean_sentence(s: &str) -> String {
    let s = s.trim_start_matches(|c: char| matches!(c, '#' | '-' | '*' | '>') || c.is_whitespace());
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes a markdown document from a brief, deterministically (the
/// extractive template behind [`OfflineInference`]).
///
/// Layout: `# title`, an italic line with the entity types and the source,
/// a summary (the context sentence naming the subject with its neighbours,
/// three sentences in document order), the other sentences of the source
/// that mention the subject, the user's instructions if any, and a source
/// citation.
pub fn render_document(brief: &DocumentBrief) -> String {
    let h = headings(&brief.language);
    let title = if brief.title.trim().is_empty() {
        brief.subject.trim()
    } else {
        brief.title.trim()
    };
    let mut out = format!("# {}\n\n", one_line(title));
    let source_name = one_line(&brief.source_name);
    let types = brief.entity_types.join(", ");
    if types.is_empty() {
        out.push_str(&format!("_{} “{source_name}”_\n\n", h.generated_from));
    } else {
        out.push_str(&format!(
            "_{types} · {} “{source_name}”_\n\n",
            h.generated_from
        ));
    }

    // Summary: the sentences around the one naming the subject, in
    // document order (headings left out).
    let context: Vec<String> = sentences(&brief.context)
        .into_iter()
        .map(|r| &brief.context[r])
        .filter(|s| !s.trim_start().starts_with('#'))
        .map(clean_sentence)
        .filter(|s| !s.is_empty())
        .collect();
    let subject = brief.subject.trim();
    let anchor = context
        .iter()
        .position(|s| !subject.is_empty() && s.contains(subject))
        .unwrap_or(0);
    let first = anchor
        .saturating_sub(SUMMARY_SENTENCES / 2)
        .min(context.len().saturating_sub(SUMMARY_SENTENCES));
    let summary: Vec<&String> = context.iter().skip(first).take(SUMMARY_SENTENCES).collect();
    out.push_str(&format!("## {}\n\n", h.summary));
    if summary.is_empty() {
        out.push_str(h.no_context);
    } else {
        out.push_str(
            &summary
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    out.push_str("\n\n");

    let mentions: Vec<String> = brief
        .mentions
        .iter()
        .map(|m| clean_sentence(m))
        .filter(|m| !m.is_empty() && !summary.contains(&m))
        .take(MAX_MENTIONS)
        .collect();
    if !mentions.is_empty() {
        out.push_str(&format!("## {}\n\n", h.mentions));
        for m in &mentions {
            out.push_str(&format!("- {m}\n"));
        }
        out.push('\n');
    }

    if let Some(instructions) = brief.instructions.as_deref().map(str::trim) {
        if !instructions.is_empty() {
            out.push_str(&format!("## {}\n\n{}\n\n", h.focus, one_line(instructions)));
        }
    }

    out.push_str(&format!("## {}\n\n", h.source));
    let link = match &brief.source_id {
        Some(id) => format!("[{source_name}]({id})"),
        None => format!("“{source_name}”"),
    };
    out.push_str(&format!(
        "{} {link}, {} “{}”.\n",
        h.generated_from,
        h.cited,
        one_line(subject)
    ));
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_limited() {
        assert_eq!(limit_words("a b  c".into(), 2), ("a b".into(), true));
        assert_eq!(limit_words("a b".into(), 2), ("a b".into(), false));
    }

    #[test]
    fn sentences_are_cleaned() {
        assert_eq!(clean_sentence("## A\n  heading"), "A heading");
        assert_eq!(clean_sentence("- item"), "item");
    }
}
