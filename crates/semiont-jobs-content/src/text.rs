//! Text helpers: code-point offsets over UTF-8 text, sentence splitting,
//! and building and resolving W3C text selectors.
//!
//! # Offset convention
//!
//! Rust strings are UTF-8 and slice by **byte** offsets; W3C
//! `TextPositionSelector` counts **characters (Unicode code points)**. Every
//! offset written into an annotation is in code points; every `Range<usize>`
//! taken or returned by the functions of this module is in bytes unless its
//! name says `chars`. [`TextIndex`] converts between the two.
//!
//! ```
//! use semiont_jobs_content::text::TextIndex;
//!
//! let text = "Zoë Müller lives in Kraków.";
//! let index = TextIndex::new(text);
//! let bytes = text.find("Kraków").unwrap();
//! assert_eq!(bytes, 22); // "ë" and "ü" take two bytes each
//! assert_eq!(index.byte_to_char(bytes), Some(20)); // the W3C offset
//! assert_eq!(index.slice_chars(20..26), Some("Kraków"));
//! ```

use std::ops::Range;

use crate::annotation::{Selector, TextPositionSelector, TextQuoteSelector};

/// Characters of context kept before and after a quote
/// (`TextQuoteSelector.prefix` / `suffix`).
pub const QUOTE_CONTEXT_CHARS: usize = 32;

/// Converts between byte offsets and code-point offsets of one text.
#[derive(Clone, Debug)]
pub struct TextIndex<'a> {
    text: &'a str,
    /// Byte offset of each character, then `text.len()`.
    starts: Vec<usize>,
}

impl<'a> TextIndex<'a> {
    /// Indexes `text` (one pass).
    pub fn new(text: &'a str) -> Self {
        let mut starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        starts.push(text.len());
        TextIndex { text, starts }
    }

    /// The indexed text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Length in code points.
    pub fn char_len(&self) -> usize {
        self.starts.len() - 1
    }

    /// The code-point offset of byte offset `byte`, if it is a character
    /// boundary (or the end of the text).
    pub fn byte_to_char(&self, byte: usize) -> Option<usize> {
        self.starts.binary_search(&byte).ok()
    }

    /// The byte offset of code-point offset `ch` (`ch == char_len()` gives
    /// the text's length).
    pub fn char_to_byte(&self, ch: usize) -> Option<usize> {
        self.starts.get(ch).copied()
    }

    /// Converts a byte range to a code-point range.
    pub fn bytes_to_chars(&self, bytes: Range<usize>) -> Option<Range<usize>> {
        Some(self.byte_to_char(bytes.start)?..self.byte_to_char(bytes.end)?)
    }

    /// Converts a code-point range to a byte range.
    pub fn chars_to_bytes(&self, chars: Range<usize>) -> Option<Range<usize>> {
        if chars.start > chars.end {
            return None;
        }
        Some(self.char_to_byte(chars.start)?..self.char_to_byte(chars.end)?)
    }

    /// The text between two code-point offsets.
    pub fn slice_chars(&self, chars: Range<usize>) -> Option<&'a str> {
        let b = self.chars_to_bytes(chars)?;
        self.text.get(b)
    }

    /// The two W3C selectors of the byte range `bytes`: a
    /// `TextPositionSelector` in code points and a `TextQuoteSelector` with
    /// up to [`QUOTE_CONTEXT_CHARS`] characters of prefix and suffix.
    ///
    /// Returns `None` when `bytes` is empty, out of range or not on
    /// character boundaries.
    pub fn selectors(&self, bytes: Range<usize>) -> Option<Vec<Selector>> {
        if bytes.start >= bytes.end {
            return None;
        }
        let chars = self.bytes_to_chars(bytes.clone())?;
        let exact = self.text.get(bytes)?;
        let pre_start = chars.start.saturating_sub(QUOTE_CONTEXT_CHARS);
        let post_end = (chars.end + QUOTE_CONTEXT_CHARS).min(self.char_len());
        let prefix = self.slice_chars(pre_start..chars.start)?;
        let suffix = self.slice_chars(chars.end..post_end)?;
        Some(vec![
            Selector::TextPositionSelector(TextPositionSelector {
                start: chars.start as u64,
                end: chars.end as u64,
            }),
            Selector::TextQuoteSelector(TextQuoteSelector {
                exact: exact.to_owned(),
                prefix: prefix.to_owned(),
                suffix: suffix.to_owned(),
            }),
        ])
    }

    /// Finds the byte range a list of selectors points at.
    ///
    /// A `TextPositionSelector` is trusted only when the text at its offsets
    /// equals the `TextQuoteSelector`'s `exact` (if there is one). Otherwise
    /// the quote is searched for, preferring the occurrence whose prefix and
    /// suffix match best, then the one nearest the position. `None` when
    /// nothing in the text matches.
    pub fn resolve(&self, selectors: &[Selector]) -> Option<Range<usize>> {
        let mut position = None;
        let mut quote = None;
        for s in selectors {
            match s {
                Selector::TextPositionSelector(p) => position = Some(p),
                Selector::TextQuoteSelector(q) => quote = Some(q),
            }
        }
        let by_position = position.and_then(|p| {
            let start = usize::try_from(p.start).ok()?;
            let end = usize::try_from(p.end).ok()?;
            if start >= end {
                return None;
            }
            self.chars_to_bytes(start..end)
        });
        let Some(q) = quote else {
            return by_position;
        };
        if q.exact.is_empty() {
            return None;
        }
        let context_score = |range: &Range<usize>| {
            common_suffix_chars(&self.text[..range.start], &q.prefix)
                + common_prefix_chars(&self.text[range.end..], &q.suffix)
        };
        if let Some(b) = &by_position {
            // Fast path: the position agrees with the quote and its context.
            if self.text.get(b.clone()) == Some(q.exact.as_str())
                && context_score(b) == q.prefix.chars().count() + q.suffix.chars().count()
            {
                return by_position;
            }
        }
        // Otherwise the occurrence of the quote whose context matches best,
        // the nearest to the position on a tie.
        let hint = by_position.map(|b| b.start);
        let mut best: Option<(usize, usize, Range<usize>)> = None;
        for (start, _) in self.text.match_indices(q.exact.as_str()) {
            let range = start..start + q.exact.len();
            let score = context_score(&range);
            let distance = hint.map_or(0, |h| h.abs_diff(start));
            let better = match &best {
                None => true,
                Some((s, d, _)) => score > *s || (score == *s && distance < *d),
            };
            if better {
                best = Some((score, distance, range));
            }
        }
        best.map(|(_, _, r)| r)
    }
}

fn common_prefix_chars(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

fn common_suffix_chars(a: &str, b: &str) -> usize {
    a.chars()
        .rev()
        .zip(b.chars().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

/// Whether `c` belongs to a word (letters, digits and marks).
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_mark(c)
}

/// Combining marks (a decomposed `é` is `e` + U+0301): part of a word.
fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// Abbreviations after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "Mr", "Mrs", "Ms", "Mx", "Dr", "Prof", "St", "Sr", "Jr", "Inc", "Ltd", "Co", "Corp", "vs",
    "etc", "e.g", "i.e", "No", "Fig", "approx", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug",
    "Sep", "Sept", "Oct", "Nov", "Dec", "Mt", "Gen", "Rev", "Hon", "cf", "al",
];

/// Splits `text` into sentences, as trimmed byte ranges.
///
/// A sentence ends at `.`, `!` or `?` followed by whitespace (not after a
/// known abbreviation or a single-letter initial), at a blank line, and at
/// the end of a markdown heading or list-item line.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let push = |s: usize, e: usize, out: &mut Vec<Range<usize>>| {
        let seg = &text[s..e];
        let trimmed_start = s + (seg.len() - seg.trim_start().len());
        let trimmed_end = e - (seg.len() - seg.trim_end().len());
        if trimmed_start < trimmed_end {
            out.push(trimmed_start..trimmed_end);
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            // Line-level structure: headings and list items are their own
            // sentences; a blank line ends a paragraph.
            let line_start = text[..i].rfind('\n').map_or(0, |p| p + 1);
            let line = text[line_start..i].trim_start();
            let structural = line.starts_with('#')
                || line.starts_with("- ")
                || line.starts_with("* ")
                || line.starts_with('|')
                || line.starts_with('>');
            let next_line = text[i + 1..].split('\n').next().unwrap_or("");
            let next_trim = next_line.trim_start();
            let next_structural = next_trim.is_empty()
                || next_trim.starts_with('#')
                || next_trim.starts_with("- ")
                || next_trim.starts_with("* ")
                || next_trim.starts_with('|')
                || next_trim.starts_with('>');
            if structural || next_structural {
                push(start, i, &mut out);
                start = i + 1;
            }
            i += 1;
            continue;
        }
        if matches!(b, b'.' | b'!' | b'?') {
            let next = text[i + 1..].chars().next();
            let ends = match next {
                None => true,
                Some(c) if c.is_whitespace() => true,
                Some('"' | '”' | '’' | ')') => {
                    // Closing quote or bracket right after the stop.
                    let after = text[i + 1..].chars().nth(1);
                    after.is_none_or(char::is_whitespace)
                }
                _ => false,
            };
            if ends && !(b == b'.' && is_abbreviation_before(text, i)) {
                let mut end = i + 1;
                if let Some(c @ ('"' | '”' | '’' | ')')) = next {
                    end += c.len_utf8();
                }
                push(start, end, &mut out);
                start = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    push(start, text.len(), &mut out);
    out
}

fn is_abbreviation_before(text: &str, dot: usize) -> bool {
    let before = &text[..dot];
    let word_start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(is_word_char(*c) || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[word_start..];
    if word.is_empty() {
        return false;
    }
    let mut chars = word.chars();
    // A single capital letter: an initial ("J. Smith").
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_uppercase() {
            return true;
        }
    }
    ABBREVIATIONS.contains(&word) || word.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_on_multibyte_text() {
        let text = "Zoë Müller flew from São Paulo to Kraków.";
        let idx = TextIndex::new(text);
        let start = text.find("Kraków").unwrap();
        let chars = idx.bytes_to_chars(start..start + "Kraków".len()).unwrap();
        assert_eq!(chars, 34..40);
        let b = idx.chars_to_bytes(chars.clone()).unwrap();
        assert_eq!(&text[b], "Kraków");
        assert_eq!(idx.slice_chars(chars), Some("Kraków"));
        assert_eq!(idx.byte_to_char(2 + 1), None, "inside ë");
        assert_eq!(idx.char_len(), text.chars().count());
    }

    #[test]
    fn selectors_and_resolution() {
        let text = "Kraków is old. Kraków is pretty. I like Kraków.";
        let idx = TextIndex::new(text);
        let third = text.rfind("Kraków").unwrap();
        let sel = idx.selectors(third..third + "Kraków".len()).unwrap();
        assert_eq!(idx.resolve(&sel), Some(third..third + "Kraków".len()));
        // Wrong position: the quote's context finds the right occurrence.
        let mut wrong = sel.clone();
        wrong[0] = Selector::TextPositionSelector(TextPositionSelector { start: 0, end: 6 });
        assert_eq!(idx.resolve(&wrong), Some(third..third + "Kraków".len()));
        // Quote absent: nothing.
        let missing = vec![Selector::TextQuoteSelector(TextQuoteSelector {
            exact: "Warsaw".into(),
            prefix: String::new(),
            suffix: String::new(),
        })];
        assert_eq!(idx.resolve(&missing), None);
    }

    #[test]
    fn sentence_splitting() {
        let text = "# Title Here\n\nDr. Zoë Müller met J. Smith at Helix Inc. on Monday. Was it fun? Yes!\n\n- item one\n- item two\nLast line.";
        let got: Vec<&str> = sentences(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(
            got,
            [
                "# Title Here",
                "Dr. Zoë Müller met J. Smith at Helix Inc. on Monday.",
                "Was it fun?",
                "Yes!",
                "- item one",
                "- item two",
                "Last line."
            ]
        );
    }
}
