//! Tokenization for the offline recognizer: words, numbers and punctuation
//! with byte ranges, and whether they sit on a title-case heading line.

use semiont_jobs_content::text::is_word_char;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Letters (and digits, marks, inner `.'’-`), e.g. `Zoë`, `S.A`, `NW-40`.
    Word,
    /// Digits with inner `,` or `.`, e.g. `2024`, `2,500`.
    Number,
    /// One other non-space character.
    Punct,
}

/// A token: a byte range of the text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tok<'a> {
    pub start: usize,
    pub end: usize,
    pub text: &'a str,
    pub kind: Kind,
    /// On a markdown heading line written in Title Case, where
    /// capitalisation says nothing about names.
    pub title_case_line: bool,
}

impl Tok<'_> {
    /// A word starting with an uppercase letter.
    pub fn is_cap(&self) -> bool {
        self.kind == Kind::Word && self.text.chars().next().is_some_and(char::is_uppercase)
    }

    /// A word with no uppercase letter.
    pub fn is_lower(&self) -> bool {
        self.kind == Kind::Word && !self.text.chars().any(char::is_uppercase)
    }

    /// Whether this is punctuation `c`.
    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct && self.text.starts_with(c)
    }
}

fn is_inner_joiner(c: char) -> bool {
    matches!(c, '.' | '\'' | '’' | '-' | '‑')
}

/// Splits `text` into tokens. A possessive `'s` is left out of the word
/// before it (`Ribeiro's` gives `Ribeiro`).
pub(crate) fn tokenize(text: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut iter = text.char_indices().peekable();
    while let Some((start, c)) = iter.next() {
        if c.is_whitespace() {
            continue;
        }
        if !is_word_char(c) {
            out.push(Tok {
                start,
                end: start + c.len_utf8(),
                text: &text[start..start + c.len_utf8()],
                kind: Kind::Punct,
                title_case_line: false,
            });
            continue;
        }
        let mut end = start + c.len_utf8();
        let mut numeric = c.is_ascii_digit();
        loop {
            let rest = &text[end..];
            let mut chars = rest.chars();
            let Some(next) = chars.next() else { break };
            if is_word_char(next) {
                numeric &= next.is_ascii_digit();
                end += next.len_utf8();
                continue;
            }
            let after = chars.next();
            let joins = match next {
                ',' => numeric && after.is_some_and(|a| a.is_ascii_digit()),
                '\'' | '’' => {
                    // Not a possessive 's at the end of the word.
                    let possessive = after == Some('s') && !chars.next().is_some_and(is_word_char);
                    !possessive && after.is_some_and(is_word_char)
                }
                c if is_inner_joiner(c) => after.is_some_and(is_word_char),
                _ => false,
            };
            if !joins {
                break;
            }
            if next != ',' && next != '.' {
                numeric = false;
            }
            end += next.len_utf8();
        }
        let word = &text[start..end];
        let kind = if word
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b',' || b == b'.')
        {
            Kind::Number
        } else {
            Kind::Word
        };
        out.push(Tok {
            start,
            end,
            text: word,
            kind,
            title_case_line: false,
        });
        // Skip the characters consumed.
        while iter.peek().is_some_and(|(i, _)| *i < end) {
            iter.next();
        }
    }
    mark_title_case_headings(text, &mut out);
    out
}

/// Marks tokens on markdown heading lines where most words are capitalised.
fn mark_title_case_headings(text: &str, toks: &mut [Tok<'_>]) {
    let mut line_start = 0;
    let mut t = 0;
    for line in text.split_inclusive('\n') {
        let line_end = line_start + line.len();
        let first = t;
        while t < toks.len() && toks[t].start < line_end {
            t += 1;
        }
        if line.trim_start().starts_with('#') {
            let words: Vec<&Tok<'_>> = toks[first..t]
                .iter()
                .filter(|w| w.kind == Kind::Word && w.text.chars().count() > 3)
                .collect();
            let caps = words.iter().filter(|w| w.is_cap()).count();
            if words.len() >= 3 && caps * 10 >= words.len() * 7 {
                for tok in &mut toks[first..t] {
                    tok.title_case_line = true;
                }
            }
        }
        line_start = line_end;
    }
}

/// Whether the text between two tokens is whitespace with at most one line
/// break (names may wrap, paragraphs end them).
pub(crate) fn joined_by_space(text: &str, a: &Tok<'_>, b: &Tok<'_>) -> bool {
    let gap = &text[a.end..b.start];
    !gap.is_empty() && gap.chars().all(char::is_whitespace) && gap.matches('\n').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        tokenize(text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            words("Ribeiro's best-known work, Agroandina S.A. earned 2,500.5 on 2009-05-18."),
            [
                "Ribeiro",
                "'",
                "s",
                "best-known",
                "work",
                ",",
                "Agroandina",
                "S.A",
                ".",
                "earned",
                "2,500.5",
                "on",
                "2009-05-18",
                "."
            ]
        );
        assert_eq!(words("O'Brien’s Zoë"), ["O'Brien", "’", "s", "Zoë"]);
        let t = tokenize("2,500 x");
        assert_eq!(t[0].kind, Kind::Number);
    }

    #[test]
    fn title_case_headings() {
        let t = tokenize("# Helix Dynamics Opens Research Centre\n\n# Three days in Lisbon\nHelix Dynamics Opens Research Centre");
        assert!(t[1].title_case_line);
        let lisbon = t.iter().find(|t| t.text == "Lisbon").unwrap();
        assert!(!lisbon.title_case_line);
        assert!(!t.last().unwrap().title_case_line);
    }
}
