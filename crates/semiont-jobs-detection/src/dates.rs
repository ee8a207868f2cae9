//! Date patterns of the offline recognizer: `12 March 2024`, `March 12,
//! 2024`, `March 2024`, `2024-03-12`, `12.03.2024`, weekdays, and bare
//! years or months after a preposition (`in 2011`, `since June`).

use crate::lexicon::{is_month, is_weekday, DATE_PREPOSITIONS, FUNCTION_WORDS};
use crate::tokens::{joined_by_space, Kind, Tok};

/// Finds dates; returns byte ranges, left to right, not overlapping.
pub(crate) fn find_dates(text: &str, toks: &[Tok<'_>]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if let Some(end) = match_at(text, toks, i) {
            out.push((toks[i].start, toks[end - 1].end));
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn day(t: &Tok<'_>) -> bool {
    let digits = t.text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &t.text[digits.len()..];
    if !(suffix.is_empty() || matches!(suffix, "st" | "nd" | "rd" | "th")) {
        return false;
    }
    !digits.is_empty()
        && digits.len() <= 2
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u8>().is_ok_and(|d| (1..=31).contains(&d))
}

fn year(t: &Tok<'_>) -> bool {
    t.kind == Kind::Number
        && t.text.len() == 4
        && t.text
            .parse::<u16>()
            .is_ok_and(|y| (1000..=2999).contains(&y))
}

fn month(t: &Tok<'_>) -> bool {
    t.kind == Kind::Word && is_month(t.text)
}

/// Token `i` followed by token `i+1` across whitespace.
fn spaced(text: &str, toks: &[Tok<'_>], i: usize) -> Option<usize> {
    let next = toks.get(i + 1)?;
    joined_by_space(text, &toks[i], next).then_some(i + 1)
}

/// After token `i`: an optional comma right after it, then whitespace;
/// returns the index of the token after that.
fn comma_spaced(text: &str, toks: &[Tok<'_>], i: usize) -> Option<usize> {
    let next = toks.get(i + 1)?;
    if next.is_punct(',') && next.start == toks[i].end {
        return spaced(text, toks, i + 1);
    }
    spaced(text, toks, i)
}

/// Skips a period right after an abbreviated month ("Mar.").
fn after_month(toks: &[Tok<'_>], i: usize) -> usize {
    match toks.get(i + 1) {
        Some(t) if t.is_punct('.') && t.start == toks[i].end && toks[i].text.len() <= 4 => i + 1,
        _ => i,
    }
}

/// A full date starting at `i` (day, month, optional year), as the index
/// after its last token.
fn full_date(text: &str, toks: &[Tok<'_>], i: usize) -> Option<usize> {
    let t = &toks[i];
    // 12 March [2024]
    if day(t) {
        if let Some(m) = spaced(text, toks, i).filter(|m| month(&toks[*m])) {
            let m = after_month(toks, m);
            if let Some(y) = comma_spaced(text, toks, m) {
                if year(&toks[y]) {
                    return Some(y + 1);
                }
            }
            return Some(m + 1);
        }
    }
    // March 12[, 2024] / March 2024
    if month(t) {
        let m = after_month(toks, i);
        let d = spaced(text, toks, m)?;
        if day(&toks[d]) {
            if let Some(y) = comma_spaced(text, toks, d) {
                if year(&toks[y]) {
                    return Some(y + 1);
                }
            }
            return Some(d + 1);
        }
        if year(&toks[d]) {
            return Some(d + 1);
        }
        return None;
    }
    // 2024-03-12, 12.03.2024, 12/03/2024
    numeric_date(text, toks, i)
}

fn numeric_date(text: &str, toks: &[Tok<'_>], i: usize) -> Option<usize> {
    let t = &toks[i];
    let valid = |y: &str, m: &str, d: &str| {
        y.len() == 4
            && m.len() <= 2
            && d.len() <= 2
            && y.parse::<u16>().is_ok_and(|y| (1000..=2999).contains(&y))
            && m.parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
            && d.parse::<u8>().is_ok_and(|d| (1..=31).contains(&d))
    };
    let parts: Vec<&str> = t.text.split(['-', '.']).collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        if t.text.contains('-') && valid(parts[0], parts[1], parts[2]) {
            return Some(i + 1);
        }
        if t.text.contains('.') && valid(parts[2], parts[1], parts[0]) {
            return Some(i + 1);
        }
    }
    // 12/03/2024: five adjacent tokens.
    if t.kind == Kind::Number && i + 4 < toks.len() {
        let w = &toks[i..i + 5];
        let adjacent = w.windows(2).all(|p| p[0].end == p[1].start);
        if adjacent
            && w[1].is_punct('/')
            && w[3].is_punct('/')
            && valid(w[4].text, w[2].text, w[0].text)
        {
            return Some(i + 5);
        }
    }
    let _ = text;
    None
}

fn match_at(text: &str, toks: &[Tok<'_>], i: usize) -> Option<usize> {
    let t = &toks[i];
    // Weekday, optionally followed by a full date: "Tuesday, 6 February 2024".
    if t.kind == Kind::Word && is_weekday(t.text) {
        if let Some(next) = comma_spaced(text, toks, i) {
            if let Some(end) = full_date(text, toks, next) {
                return Some(end);
            }
        }
        return Some(i + 1);
    }
    if let Some(end) = full_date(text, toks, i) {
        return Some(end);
    }
    // A bare month or year after a preposition: "in June", "since 2019".
    let prev = i.checked_sub(1).map(|p| &toks[p]);
    let after_preposition = prev.is_some_and(|p| {
        p.kind == Kind::Word
            && joined_by_space(text, p, t)
            && DATE_PREPOSITIONS.contains(&p.text.to_lowercase().as_str())
    });
    if !after_preposition {
        return None;
    }
    if month(t) && t.text.len() > 3 {
        return Some(i + 1);
    }
    if year(t) {
        // "for 2000 people" is a quantity, not a year.
        let next = toks.get(i + 1);
        let quantity = next.is_some_and(|n| {
            n.is_lower() && joined_by_space(text, t, n) && !FUNCTION_WORDS.contains(&n.text)
        });
        if !quantity {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::tokenize;

    fn dates(text: &str) -> Vec<&str> {
        let toks = tokenize(text);
        find_dates(text, &toks)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }

    #[test]
    fn date_patterns() {
        assert_eq!(
            dates("On Tuesday, 6 February 2024 and March 15, 2024 we met; founded in 2011, since June, by 2009-05-18 or 14.03.2024 or 1/9/2023."),
            ["Tuesday, 6 February 2024", "March 15, 2024", "2011", "June", "2009-05-18", "14.03.2024", "1/9/2023"]
        );
        assert_eq!(
            dates("Between January 2019 and December 2022, on 22 April 2024 and Thursday."),
            ["January 2019", "December 2022", "22 April 2024", "Thursday"]
        );
        assert_eq!(
            dates("It employs 2000 people and 1,400 staff; May we?"),
            Vec::<&str>::new()
        );
        assert_eq!(dates("the 3rd of May, on 3rd May 2020"), ["3rd May 2020"]);
    }
}
