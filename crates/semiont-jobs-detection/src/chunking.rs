//! Model-based detection over a long document: the plan of overlapping
//! chunks, and the runner that asks the model chunk by chunk — halving a
//! chunk whose answer was cut off or did not fit the context, retrying a
//! malformed answer once, and handing back each finished chunk in order.
//!
//! # Chunks and ownership
//!
//! The text is cut into consecutive *owned* segments (at paragraph, then
//! sentence, then word boundaries). The text sent for a segment is the
//! segment widened by `overlap / 2` characters on each side, so a mention
//! that straddles a cut is seen whole by both neighbours; only the chunk
//! that owns the mention's first character keeps it, so it is found once.
//! Halving a chunk splits its owned segment the same way.
//!
//! # Resuming
//!
//! [`ChunkRunner::next`] hands back finished chunks strictly in plan order,
//! so after each one "the text before the end of this chunk's owned segment
//! is done" is a valid cursor: a character offset that does not depend on
//! the chunk size. [`plan_from`] plans the rest of the text from such an
//! offset, so a retry resumes where the last attempt stopped even when the
//! chunk size changed in between.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use semiont_jobs_content::text::sentences;
use semiont_jobs_content::InferenceClient;

use crate::llm;
use crate::{Error, Result};

/// One piece of text sent to the model: `range` is sent, spans starting in
/// `own` are kept. Byte ranges of the document, on character boundaries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) own: Range<usize>,
    pub(crate) range: Range<usize>,
}

/// The planned chunks of `text`: each sends at most `chunk_chars`
/// characters (owned segments of `chunk_chars - overlap` characters,
/// widened by half the overlap on each side).
#[cfg(test)]
pub(crate) fn plan(text: &str, chunk_chars: usize, overlap_chars: usize) -> Vec<Piece> {
    plan_from(text, 0, chunk_chars, overlap_chars)
}

/// The planned chunks of the text from byte `start` (a character boundary)
/// to its end, as [`plan`] cuts them: the owned segments cover
/// `start..text.len()`, and the first one is widened to the left like any
/// other, so a mention straddling `start` is still seen whole.
pub(crate) fn plan_from(
    text: &str,
    start: usize,
    chunk_chars: usize,
    overlap_chars: usize,
) -> Vec<Piece> {
    let margin = overlap_chars / 2;
    let own_chars = chunk_chars.saturating_sub(2 * margin).max(1);
    segments(text, start.min(text.len())..text.len(), own_chars)
        .into_iter()
        .map(|own| widen(text, own, margin))
        .collect()
}

/// Splits `within` into consecutive segments of at most `max_chars`
/// characters, cutting at the last paragraph break, else sentence end,
/// else whitespace in the second half of each window.
fn segments(text: &str, within: Range<usize>, max_chars: usize) -> Vec<Range<usize>> {
    let max_chars = max_chars.max(1);
    let mut out = Vec::new();
    let mut start = within.start;
    while start < within.end {
        let rest = &text[start..within.end];
        let limit = rest
            .char_indices()
            .nth(max_chars)
            .map_or(rest.len(), |(i, _)| i);
        if limit == rest.len() {
            out.push(start..within.end);
            break;
        }
        let half = rest.char_indices().nth(max_chars / 2).map_or(0, |(i, _)| i);
        let cut = cut_near(text, start + half..start + limit, start + limit);
        out.push(start..cut);
        start = cut;
    }
    out
}

/// A cut position in `window` (byte positions of `text`) as close to
/// `target` as possible, preferring a paragraph break, then a sentence
/// end, then whitespace, then any character boundary. Never the window's
/// start (so every segment is non-empty).
fn cut_near(text: &str, window: Range<usize>, target: usize) -> usize {
    let (lo, hi) = (window.start, window.end);
    let closest = |cands: &mut dyn Iterator<Item = usize>| {
        cands
            .filter(|p| *p > lo && *p <= hi)
            .min_by_key(|p| p.abs_diff(target))
    };
    let slice = &text[lo..hi];
    let paragraphs = &mut slice.match_indices("\n\n").map(|(i, _)| lo + i + 2);
    if let Some(p) = closest(paragraphs) {
        return p;
    }
    // Sentences that end with terminal punctuation (the last fragment of
    // the window may be an unfinished one).
    let ends = &mut sentences(slice)
        .into_iter()
        .filter(|r| {
            slice[r.clone()]
                .trim_end()
                .trim_end_matches(['"', '\'', '”', '’', ')', ']', '»'])
                .ends_with(['.', '!', '?', '…'])
        })
        .map(|r| lo + r.end);
    if let Some(p) = closest(ends) {
        // Keep the whitespace after a sentence with the sentence.
        let after = &text[p..hi];
        return p + (after.len() - after.trim_start().len());
    }
    let spaces = &mut slice
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, c)| lo + i + c.len_utf8());
    if let Some(p) = closest(spaces) {
        return p;
    }
    let mut t = target.clamp(lo + 1, hi);
    while !text.is_char_boundary(t) {
        t += 1;
    }
    t.min(hi)
}

/// `own` widened by up to `margin` characters on each side, without
/// starting or ending inside a word.
fn widen(text: &str, own: Range<usize>, margin: usize) -> Piece {
    let mut start = own.start;
    for (i, _) in text[..own.start].char_indices().rev().take(margin) {
        start = i;
    }
    // Move forward to a word start (or back to the owned start).
    while start < own.start {
        let prev = text[..start].chars().next_back();
        if prev.is_none_or(char::is_whitespace) {
            break;
        }
        start += text[start..].chars().next().map_or(1, char::len_utf8);
    }
    let mut end = own.end;
    for (i, c) in text[own.end..].char_indices().take(margin) {
        end = own.end + i + c.len_utf8();
    }
    while end > own.end {
        let next = text[end..].chars().next();
        if next.is_none_or(char::is_whitespace) {
            break;
        }
        end -= text[..end].chars().next_back().map_or(1, char::len_utf8);
    }
    Piece {
        own: own.clone(),
        range: start.min(own.start)..end.max(own.end),
    }
}

/// The two halves of `piece` (its owned segment cut near the middle), or
/// `None` when a half would own fewer than `min_chars` characters.
fn halve(text: &str, piece: &Piece, margin: usize, min_chars: usize) -> Option<(Piece, Piece)> {
    let own = &piece.own;
    let chars = text[own.clone()].chars().count();
    if chars / 2 < min_chars.max(1) {
        return None;
    }
    let at = |n: usize| {
        text[own.clone()]
            .char_indices()
            .nth(n)
            .map_or(own.end, |(i, _)| own.start + i)
    };
    let cut = cut_near(text, at(chars / 4)..at(chars * 3 / 4), at(chars / 2));
    if cut <= own.start || cut >= own.end {
        return None;
    }
    Some((
        widen(text, own.start..cut, margin),
        widen(text, cut..own.end, margin),
    ))
}

fn char_len(text: &str, r: &Range<usize>) -> usize {
    text[r.clone()].chars().count()
}

/// What the runner needs to ask about one entity type.
pub(crate) struct Ask {
    pub(crate) client: Arc<dyn InferenceClient>,
    pub(crate) text: Arc<str>,
    pub(crate) entity_type: String,
    pub(crate) resource_id: String,
    pub(crate) temperature: f32,
    pub(crate) max_tokens: u32,
    /// Half the overlap, in characters.
    pub(crate) margin: usize,
    /// The floor of halving: fewest characters a half may own.
    pub(crate) min_chars: usize,
    /// The largest owned size that worked so far (learned from halvings);
    /// later chunks start at this size.
    pub(crate) learned_chars: Arc<AtomicUsize>,
    pub(crate) cancel: CancellationToken,
}

/// The result of one planned chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChunkOutcome {
    /// Its index in the plan.
    pub(crate) index: usize,
    /// Accepted spans (byte ranges of the document) it owns, in order.
    pub(crate) spans: Vec<Range<usize>>,
    /// Classes of the failures of its pieces (`MALFORMED_OUTPUT`,
    /// `TRUNCATED`), one entry per failed piece.
    pub(crate) errors: Vec<&'static str>,
    /// Model calls made for it.
    pub(crate) calls: u64,
}

/// Runs the planned chunks of one entity type, up to `concurrency` at once,
/// and hands back their outcomes in plan order.
pub(crate) struct ChunkRunner {
    ask: Arc<Ask>,
    plan: Arc<[Piece]>,
    concurrency: usize,
    next_spawn: usize,
    next_yield: usize,
    running: JoinSet<(usize, Result<ChunkOutcome>)>,
    finished: BTreeMap<usize, ChunkOutcome>,
}

impl ChunkRunner {
    /// A runner over `plan` starting at chunk `from` (0 for a fresh run; a
    /// saved cursor to resume).
    pub(crate) fn new(ask: Arc<Ask>, plan: Arc<[Piece]>, from: usize, concurrency: usize) -> Self {
        let from = from.min(plan.len());
        ChunkRunner {
            ask,
            plan,
            concurrency: concurrency.max(1),
            next_spawn: from,
            next_yield: from,
            running: JoinSet::new(),
            finished: BTreeMap::new(),
        }
    }

    /// The next finished chunk in plan order; `None` when all are done.
    /// An error (cancellation, a retryable or permanent model failure)
    /// stops the other chunks in flight.
    pub(crate) async fn next(&mut self) -> Option<Result<ChunkOutcome>> {
        loop {
            if self.next_yield >= self.plan.len() {
                return None;
            }
            if let Some(done) = self.finished.remove(&self.next_yield) {
                self.next_yield += 1;
                return Some(Ok(done));
            }
            while self.running.len() < self.concurrency && self.next_spawn < self.plan.len() {
                let index = self.next_spawn;
                let (ask, piece) = (Arc::clone(&self.ask), self.plan[index].clone());
                self.running
                    .spawn(async move { (index, run_chunk(&ask, index, piece).await) });
                self.next_spawn += 1;
            }
            match self.running.join_next().await? {
                Ok((index, Ok(outcome))) => {
                    self.finished.insert(index, outcome);
                }
                Ok((_, Err(e))) => {
                    self.running.abort_all();
                    self.next_yield = self.plan.len();
                    return Some(Err(e));
                }
                Err(e) => {
                    self.running.abort_all();
                    self.next_yield = self.plan.len();
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                    return Some(Err(Error::Cancelled {
                        resource_id: self.ask.resource_id.clone(),
                    }));
                }
            }
        }
    }
}

/// What one model call for a piece gave.
enum Answer {
    /// Usable spans (byte ranges of the piece's text).
    Spans(Vec<Range<usize>>),
    /// Cut off at the token limit; the complete items before the cut.
    Truncated(Vec<Range<usize>>),
    /// The server said the request does not fit the context.
    Overflow(semiont_jobs_content::Error),
    /// Unusable twice in a row.
    Malformed,
}

/// Runs one planned chunk: pre-split to the learned size, then each piece
/// in order, halving pieces that were cut off or did not fit.
async fn run_chunk(ask: &Ask, index: usize, piece: Piece) -> Result<ChunkOutcome> {
    let text = &*ask.text;
    let mut out = ChunkOutcome {
        index,
        ..ChunkOutcome::default()
    };
    let mut queue = VecDeque::from([piece]);
    let mut ready = VecDeque::new();
    // Pieces bigger than what worked before are halved up front.
    while let Some(p) = queue.pop_front() {
        let learned = ask.learned_chars.load(Ordering::Relaxed);
        match (char_len(text, &p.own) > learned)
            .then(|| halve(text, &p, ask.margin, ask.min_chars))
            .flatten()
        {
            Some((a, b)) => {
                queue.push_front(b);
                queue.push_front(a);
            }
            None => ready.push_back(p),
        }
    }
    while let Some(p) = ready.pop_front() {
        let answer = ask_piece(ask, &p, &mut out.calls).await?;
        let (spans, too_big) = match answer {
            Answer::Spans(s) => (s, None),
            Answer::Truncated(s) => (s, Some(None)),
            Answer::Overflow(e) => (Vec::new(), Some(Some(e))),
            Answer::Malformed => {
                out.errors.push("MALFORMED_OUTPUT");
                continue;
            }
        };
        if let Some(overflow) = too_big {
            if let Some((a, b)) = halve(text, &p, ask.margin, ask.min_chars) {
                let half = char_len(text, &a.own).max(char_len(text, &b.own));
                ask.learned_chars.fetch_min(half, Ordering::Relaxed);
                tracing::info!(
                    entity_type = %ask.entity_type,
                    chunk = index,
                    chars = char_len(text, &p.range),
                    cause = if overflow.is_some() { "context exceeded" } else { "answer truncated" },
                    "asking again in two halves"
                );
                ready.push_front(b);
                ready.push_front(a);
                continue;
            }
            match overflow {
                Some(source) => {
                    return Err(Error::ContextTooSmall {
                        chars: char_len(text, &p.range),
                        source,
                    })
                }
                None => {
                    tracing::warn!(entity_type = %ask.entity_type, chunk = index, "answer truncated at the smallest chunk size");
                    out.errors.push("TRUNCATED");
                }
            }
        }
        out.spans.extend(
            spans
                .into_iter()
                .map(|r| p.range.start + r.start..p.range.start + r.end)
                .filter(|r| p.own.contains(&r.start)),
        );
    }
    out.spans.sort_by_key(|r| (r.start, r.end));
    out.spans.dedup();
    Ok(out)
}

/// Asks the model about one piece; a malformed answer is asked again once
/// (slightly warmer, so a greedy model does not repeat itself).
async fn ask_piece(ask: &Ask, piece: &Piece, calls: &mut u64) -> Result<Answer> {
    let chunk = &ask.text[piece.range.clone()];
    for attempt in 0..2 {
        let temperature = if attempt == 0 {
            ask.temperature
        } else {
            (ask.temperature + 0.3).min(1.0)
        };
        let cancelled = || Error::Cancelled {
            resource_id: ask.resource_id.clone(),
        };
        if ask.cancel.is_cancelled() {
            return Err(cancelled());
        }
        let request = llm::request(&ask.entity_type, chunk, temperature, ask.max_tokens);
        *calls += 1;
        let answer = tokio::select! {
            biased;
            _ = ask.cancel.cancelled() => return Err(cancelled()),
            answer = ask.client.complete(&request) => answer,
        };
        match answer {
            Ok(c) if c.truncated => {
                let salvaged = llm::parse_prefix(&c.text).unwrap_or_default();
                return Ok(Answer::Truncated(llm::check(chunk, &salvaged).spans));
            }
            Ok(c) => match llm::parse(&c.text) {
                Ok(parsed) => {
                    let checked = llm::check(chunk, &parsed);
                    if checked.repaired > 0 || checked.dropped > 0 {
                        tracing::debug!(entity_type = %ask.entity_type, repaired = checked.repaired, dropped = checked.dropped, "model spans corrected");
                    }
                    return Ok(Answer::Spans(checked.spans));
                }
                Err(reason) => {
                    tracing::warn!(entity_type = %ask.entity_type, attempt = attempt + 1, %reason, "malformed model answer");
                }
            },
            Err(e @ semiont_jobs_content::Error::ContextExceeded { .. }) => {
                return Ok(Answer::Overflow(e));
            }
            Err(e @ semiont_jobs_content::Error::MalformedOutput { .. }) => {
                tracing::warn!(entity_type = %ask.entity_type, attempt = attempt + 1, error = %e, "malformed server response");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Answer::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned<'t>(text: &'t str, plan: &[Piece]) -> Vec<&'t str> {
        plan.iter().map(|p| &text[p.own.clone()]).collect()
    }

    #[test]
    fn owned_segments_cover_the_text_and_chunks_overlap() {
        let text = "Para one. Sentence two.\n\nPara two is here. And more.\n\n".repeat(40);
        let plan = plan(&text, 200, 40);
        assert!(plan.len() > 5);
        assert_eq!(plan.first().unwrap().own.start, 0);
        assert_eq!(plan.last().unwrap().own.end, text.len());
        for w in plan.windows(2) {
            assert_eq!(w[0].own.end, w[1].own.start);
            // Neighbours see some of each other's text.
            assert!(w[0].range.end > w[1].own.start);
            assert!(w[1].range.start < w[0].own.end);
        }
        for p in &plan {
            assert!(char_len(&text, &p.range) <= 200, "{p:?}");
            assert!(p.range.start <= p.own.start && p.own.end <= p.range.end);
            // Sent text starts and ends at word boundaries.
            let sent = &text[p.range.clone()];
            assert!(
                p.range.start == p.own.start
                    || text[..p.range.start].ends_with(char::is_whitespace),
                "{sent:?}"
            );
            assert!(
                p.range.end == text.len() || text[p.range.end..].starts_with(char::is_whitespace),
                "{sent:?}"
            );
        }
        assert_eq!(owned(&text, &plan).concat(), text);
    }

    #[test]
    fn cuts_prefer_paragraphs_then_sentences_then_spaces() {
        let text =
            "Zoë Müller met Tobias. They talked about Kraków and São Paulo for hours without end";
        let plan = plan(text, 40, 0);
        assert_eq!(owned(text, &plan)[0], "Zoë Müller met Tobias. ");
        assert_eq!(
            owned(text, &plan)[1],
            "They talked about Kraków and São Paulo "
        );
        let words = "wörd ".repeat(30);
        for p in super::plan(&words, 40, 0) {
            assert!(words[p.own.clone()].ends_with(' ') || p.own.end == words.len());
        }
        // No boundary at all: cut at a character boundary.
        let solid = "ü".repeat(100);
        let plan = super::plan(&solid, 30, 0);
        assert_eq!(owned(&solid, &plan).concat(), solid);
    }

    #[test]
    fn a_plan_from_an_offset_covers_the_rest_and_sees_across_it() {
        let text = "Ada Lovelace wrote notes. Charles Babbage built engines.\n\n".repeat(20);
        let whole = plan(&text, 120, 30);
        let cut = whole[3].own.end;
        let rest = plan_from(&text, cut, 120, 30);
        assert_eq!(rest.first().unwrap().own.start, cut);
        assert_eq!(rest.last().unwrap().own.end, text.len());
        assert_eq!(owned(&text, &rest).concat(), &text[cut..]);
        // The first chunk of the rest sees the overlap before the cut.
        assert!(rest[0].range.start < cut);
        // Resuming with the same sizes plans the same chunks as the whole.
        assert_eq!(rest, whole[4..]);
        // Another chunk size still covers exactly the rest.
        let other = plan_from(&text, cut, 300, 30);
        assert_eq!(owned(&text, &other).concat(), &text[cut..]);
        assert!(plan_from(&text, text.len(), 120, 30).is_empty());
    }

    #[test]
    fn halving_stops_at_the_floor() {
        let text = "One sentence here. ".repeat(20);
        let whole = widen(&text, 0..text.len(), 10);
        let (a, b) = halve(&text, &whole, 10, 50).unwrap();
        assert_eq!(a.own.end, b.own.start);
        assert_eq!((a.own.start, b.own.end), (0, text.len()));
        assert_eq!(&text[a.own.clone()], "One sentence here. ".repeat(10));
        assert!(a.range.end > a.own.end && b.range.start < b.own.start);
        let small = widen(&text, 0..60, 10);
        assert!(halve(&text, &small, 10, 50).is_none());
    }
}
