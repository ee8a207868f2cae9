//! The offline entity recognizer: rules and gazetteers for people,
//! organizations, locations and dates, plus custom types from gazetteer
//! files. Deterministic; no model.
//!
//! How a document is analysed:
//!
//! 1. Candidates come from gazetteers (embedded lists and user files),
//!    capitalisation rules (titles, first names, role nouns, organization
//!    words and legal forms, place nouns, landmarks, "in/at/from
//!    `<Capitalised>`") and date patterns.
//! 2. Overlaps are resolved: strong evidence before weak ("in `<Capitalised>`"
//!    is weak), then longer spans, then gazetteer before rule.
//! 3. Names found are propagated through the document ("one sense per
//!    discourse"): a person's surname and given name, an organization's
//!    name without its legal form ("Nordbank AG" → "Nordbank"), and every
//!    accepted surface string are matched everywhere, including title-case
//!    headings where capitalisation rules are switched off; then overlaps
//!    are resolved again.
//!
//! Custom types (any name other than the four built-in ones) are found by
//! gazetteer only. They are resolved among themselves and are dropped
//! inside a longer built-in mention ("Potato" inside "International Potato
//! Center"); the same span may carry a built-in and a custom type.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use semiont_jobs_content::text::is_word_char;

use crate::dates::find_dates;
use crate::lexicon::*;
use crate::tokens::{joined_by_space, tokenize, Kind, Tok};
use crate::{Error, Result};

/// The built-in entity types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltinType {
    /// People.
    Person,
    /// Companies, institutions, agencies, ensembles.
    Organization,
    /// Countries, regions, cities, districts, rivers, landmarks.
    Location,
    /// Calendar dates, months, years and weekdays.
    Date,
}

impl BuiltinType {
    /// The canonical type name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinType::Person => "Person",
            BuiltinType::Organization => "Organization",
            BuiltinType::Location => "Location",
            BuiltinType::Date => "Date",
        }
    }

    /// Recognizes a type name, case-insensitively, with common synonyms
    /// (`Organisation`, `Org`, `Company`, `Place`, `GPE`, `People`, ...).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_lowercase().as_str() {
            "person" | "people" | "per" | "persons" => Some(BuiltinType::Person),
            "organization" | "organisation" | "org" | "organizations" | "organisations"
            | "company" => Some(BuiltinType::Organization),
            "location" | "loc" | "place" | "places" | "gpe" | "locations" => {
                Some(BuiltinType::Location)
            }
            "date" | "dates" => Some(BuiltinType::Date),
            _ => None,
        }
    }
}

/// A mention found in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mention {
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset after the last character.
    pub end: usize,
    /// The canonical type name (`Person`, ..., or a custom type as spelled
    /// in its gazetteer).
    pub entity_type: String,
    /// Which rule found it (for debugging), e.g. `gazetteer` or `title`.
    pub rule: &'static str,
}

/// What found a candidate, by strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    /// "in `<Capitalised>`": only if nothing else claims the span.
    Weak = 1,
    /// A capitalisation rule or a propagated name.
    Rule = 2,
    /// A gazetteer entry.
    Gazetteer = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Ty {
    Builtin(BuiltinType),
    Custom(usize),
}

#[derive(Clone, Debug)]
struct Cand {
    start: usize,
    end: usize,
    ty: Ty,
    strength: Strength,
    rule: &'static str,
}

#[derive(Clone, Debug)]
struct Entry {
    text: String,
    /// All-lowercase entries match any case.
    any_case: bool,
}

/// A list of names per type, matched at word boundaries.
#[derive(Clone, Debug, Default)]
struct Gazetteer {
    entries: Vec<(Entry, Ty)>,
    /// Lowercased first character → entry indices.
    by_first: HashMap<char, Vec<usize>>,
}

impl Gazetteer {
    fn add(&mut self, name: &str, ty: Ty) {
        let text = name.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some(first) = text.chars().next() else {
            return;
        };
        let any_case = !text.chars().any(char::is_uppercase);
        let key = first.to_lowercase().next().unwrap_or(first);
        self.by_first
            .entry(key)
            .or_default()
            .push(self.entries.len());
        self.entries.push((Entry { text, any_case }, ty));
    }

    fn find(
        &self,
        text: &str,
        toks: &[Tok<'_>],
        strength: Strength,
        rule: &'static str,
        out: &mut Vec<Cand>,
    ) {
        for t in toks {
            if t.kind == Kind::Punct {
                continue;
            }
            let Some(first) = t.text.chars().next() else {
                continue;
            };
            let key = first.to_lowercase().next().unwrap_or(first);
            let Some(ids) = self.by_first.get(&key) else {
                continue;
            };
            for &id in ids {
                let (entry, ty) = &self.entries[id];
                if let Some(end) = match_entry(text, t.start, entry) {
                    out.push(Cand {
                        start: t.start,
                        end,
                        ty: *ty,
                        strength,
                        rule,
                    });
                }
            }
        }
    }
}

/// Matches `entry` at byte `pos`: whitespace in the entry matches any run of
/// whitespace, letters match case-insensitively; a mixed-case entry must
/// then match exactly or in all capitals (a dateline `KRAKÓW`). The match
/// must end at a word boundary.
fn match_entry(text: &str, pos: usize, entry: &Entry) -> Option<usize> {
    let mut ti = pos;
    for ec in entry.text.chars() {
        if ec == ' ' {
            let ws: usize = text[ti..]
                .chars()
                .take_while(|c| c.is_whitespace())
                .map(char::len_utf8)
                .sum();
            if ws == 0 {
                return None;
            }
            ti += ws;
            continue;
        }
        let tc = text[ti..].chars().next()?;
        if tc != ec && !tc.to_lowercase().eq(ec.to_lowercase()) {
            return None;
        }
        ti += tc.len_utf8();
    }
    if text[ti..].chars().next().is_some_and(is_word_char) {
        return None;
    }
    if !entry.any_case {
        let got = &text[pos..ti];
        let same = got.split_whitespace().eq(entry.text.split(' '));
        let all_caps = !got.chars().any(char::is_lowercase)
            && got.chars().filter(|c| c.is_alphabetic()).count() >= 2;
        if !same && !all_caps {
            return None;
        }
    }
    Some(ti)
}

/// A rule- and gazetteer-based recognizer. Build it once and reuse it;
/// [`Recognizer::analyze`] is deterministic.
#[derive(Clone, Debug)]
pub struct Recognizer {
    gazetteer: Gazetteer,
    /// Custom type names, by index.
    custom: Vec<String>,
}

impl Default for Recognizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Recognizer {
    /// The recognizer with its embedded gazetteers.
    pub fn new() -> Self {
        let mut gazetteer = Gazetteer::default();
        for name in LOCATIONS {
            gazetteer.add(name, Ty::Builtin(BuiltinType::Location));
        }
        for name in ORGANIZATIONS {
            gazetteer.add(name, Ty::Builtin(BuiltinType::Organization));
        }
        Recognizer {
            gazetteer,
            custom: Vec::new(),
        }
    }

    /// Adds names for an entity type: a built-in type (extending its
    /// gazetteer) or a custom one. Names are matched at word boundaries;
    /// an all-lowercase name matches in any case, others exactly (or in all
    /// capitals).
    pub fn with_names<I, S>(mut self, entity_type: &str, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let ty = self.type_key(entity_type);
        for n in names {
            self.gazetteer.add(n.as_ref(), ty);
        }
        self
    }

    fn type_key(&mut self, entity_type: &str) -> Ty {
        if let Some(b) = BuiltinType::parse(entity_type) {
            return Ty::Builtin(b);
        }
        let name = entity_type.trim();
        if let Some(i) = self
            .custom
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
        {
            return Ty::Custom(i);
        }
        self.custom.push(name.to_owned());
        Ty::Custom(self.custom.len() - 1)
    }

    /// Adds the names of a gazetteer file: one name per line, blank lines
    /// and lines starting with `#` ignored. The entity type is the file
    /// name without its extension (`Crop.txt` → `Crop`).
    pub fn with_gazetteer_file(self, path: &Path) -> Result<Self> {
        let ty = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Error::Gazetteer {
                path: path.to_owned(),
                reason: "the file name does not name an entity type".into(),
            })?
            .to_owned();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Gazetteer {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let names: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        Ok(self.with_names(&ty, names))
    }

    /// Adds every `<Type>.txt` file of a directory (normally
    /// `<dataDir>/gazetteers`). A missing directory adds nothing.
    pub fn with_gazetteer_dir(mut self, dir: &Path) -> Result<Self> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(e) => {
                return Err(Error::Gazetteer {
                    path: dir.to_owned(),
                    reason: e.to_string(),
                })
            }
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        for f in files {
            self = self.with_gazetteer_file(&f)?;
        }
        Ok(self)
    }

    /// The canonical name of an entity type this recognizer can find:
    /// a built-in type (by any of its synonyms) or a custom type with a
    /// gazetteer. `None` for types it knows nothing about.
    pub fn canonical_type(&self, entity_type: &str) -> Option<String> {
        if let Some(b) = BuiltinType::parse(entity_type) {
            return Some(b.as_str().to_owned());
        }
        let name = entity_type.trim();
        self.custom
            .iter()
            .find(|c| c.eq_ignore_ascii_case(name))
            .cloned()
    }

    fn type_name(&self, ty: Ty) -> String {
        match ty {
            Ty::Builtin(b) => b.as_str().to_owned(),
            Ty::Custom(i) => self.custom[i].clone(),
        }
    }

    /// Finds all mentions of all types in `text`, ordered by start offset
    /// (byte offsets).
    pub fn analyze(&self, text: &str) -> Vec<Mention> {
        let toks = tokenize(text);
        let mut cands = Vec::new();
        self.gazetteer
            .find(text, &toks, Strength::Gazetteer, "gazetteer", &mut cands);
        for (s, e) in find_dates(text, &toks) {
            cands.push(Cand {
                start: s,
                end: e,
                ty: Ty::Builtin(BuiltinType::Date),
                strength: Strength::Rule,
                rule: "date",
            });
        }
        rules(text, &toks, &mut cands);
        cands.retain(|c| !gazetteer_inside_longer_name(text, &toks, c));

        let first = resolve(&cands);
        // Propagate names found to their other mentions.
        let aliases = aliases(text, &first);
        let mut alias_gazetteer = Gazetteer::default();
        for (name, ty) in &aliases {
            alias_gazetteer.add(name, Ty::Builtin(*ty));
        }
        // Aliases match exactly (no case folding beyond all-caps).
        for (entry, _) in &mut alias_gazetteer.entries {
            entry.any_case = false;
        }
        alias_gazetteer.find(text, &toks, Strength::Rule, "propagated", &mut cands);
        let mut mentions = resolve(&cands);
        mentions.sort_by_key(|c| (c.start, c.end, c.ty));
        mentions
            .into_iter()
            .map(|c| Mention {
                start: c.start,
                end: c.end,
                entity_type: self.type_name(c.ty),
                rule: c.rule,
            })
            .collect()
    }

    /// The mentions of one entity type (byte offsets), or `None` when the
    /// type is unknown to this recognizer (see
    /// [`canonical_type`](Self::canonical_type)).
    pub fn find(&self, text: &str, entity_type: &str) -> Option<Vec<Mention>> {
        let canonical = self.canonical_type(entity_type)?;
        Some(
            self.analyze(text)
                .into_iter()
                .filter(|m| m.entity_type == canonical)
                .collect(),
        )
    }
}

/// A gazetteer place or organization directly followed by another
/// capitalised word is part of a longer name ("Lisboa Walks"), unless that
/// word makes it an organization or a landmark, which other rules find.
fn gazetteer_inside_longer_name(text: &str, toks: &[Tok<'_>], c: &Cand) -> bool {
    if c.rule != "gazetteer" || !matches!(c.ty, Ty::Builtin(BuiltinType::Location)) {
        return false;
    }
    // Tokens are ordered and disjoint, so their ends are sorted too.
    let Ok(last) = toks.binary_search_by_key(&c.end, |t| t.end) else {
        return false;
    };
    let Some(next) = toks.get(last + 1) else {
        return false;
    };
    next.is_cap()
        && !next.title_case_line
        && joined_by_space(text, &toks[last], next)
        && !is_stopword(next.text)
        && !is_month(next.text)
        && !is_weekday(next.text)
}

/// Resolves overlaps among built-in candidates, and separately among custom
/// ones (dropped inside longer built-in mentions).
fn resolve(cands: &[Cand]) -> Vec<Cand> {
    let order = |a: &&Cand, b: &&Cand| {
        let tier = |c: &Cand| c.strength != Strength::Weak;
        tier(b)
            .cmp(&tier(a))
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(b.strength.cmp(&a.strength))
            .then(a.start.cmp(&b.start))
            .then(a.ty.cmp(&b.ty))
    };
    let (mut builtin, mut custom): (Vec<&Cand>, Vec<&Cand>) =
        cands.iter().partition(|c| matches!(c.ty, Ty::Builtin(_)));
    builtin.sort_by(order);
    custom.sort_by(order);
    // Accepted spans are disjoint: keyed by start, the only one that can
    // overlap [s, e) is the last one starting before e.
    let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
    let mut accepted: Vec<Cand> = Vec::new();
    for c in builtin {
        let overlaps = taken
            .range(..c.end)
            .next_back()
            .is_some_and(|(_, &end)| end > c.start);
        if !overlaps {
            taken.insert(c.start, c.end);
            accepted.push(c.clone());
        }
    }
    let mut custom_taken: BTreeMap<usize, usize> = BTreeMap::new();
    let mut custom_accepted: Vec<Cand> = Vec::new();
    for c in custom {
        let inside_longer = taken
            .range(..=c.start)
            .next_back()
            .is_some_and(|(&s, &e)| c.end <= e && e - s > c.end - c.start);
        // The same span may carry several custom types; other overlaps may not.
        let clash = custom_taken
            .range(..c.end)
            .next_back()
            .is_some_and(|(&s, &e)| e > c.start && !(s == c.start && e == c.end));
        if !inside_longer && !clash {
            custom_taken.insert(c.start, c.end);
            custom_accepted.push(c.clone());
        }
    }
    accepted.extend(custom_accepted);
    accepted.sort_by_key(|c| (c.start, c.end, c.ty));
    accepted.dedup_by(|a, b| a.start == b.start && a.end == b.end && a.ty == b.ty);
    accepted
}

/// Other names of accepted mentions, to be found elsewhere in the text.
fn aliases(text: &str, accepted: &[Cand]) -> Vec<(String, BuiltinType)> {
    let mut found: BTreeMap<String, Option<BuiltinType>> = BTreeMap::new();
    let mut add = |name: &str, ty: BuiltinType| {
        let name = name.trim();
        if name.chars().count() < 3 || is_stopword(name) || is_month(name) || is_weekday(name) {
            return;
        }
        found
            .entry(name.to_owned())
            .and_modify(|t| {
                if *t != Some(ty) {
                    *t = None; // ambiguous: drop
                }
            })
            .or_insert(Some(ty));
    };
    for c in accepted {
        let Ty::Builtin(ty) = c.ty else { continue };
        if ty == BuiltinType::Date {
            continue;
        }
        let surface = &text[c.start..c.end];
        add(surface, ty);
        let words: Vec<&str> = surface.split_whitespace().collect();
        match ty {
            BuiltinType::Person if words.len() >= 2 => {
                add(words[0], ty);
                if let Some(last) = words.last() {
                    add(last, ty);
                }
            }
            BuiltinType::Organization => {
                let last = words.last().map(|w| w.trim_end_matches('.')).unwrap_or("");
                if words.len() >= 2 && LEGAL_FORMS.contains(&last) {
                    let base = &words[..words.len() - 1];
                    add(&base.join(" "), ty);
                    let head = base[0];
                    if base.len() >= 2
                        && !ORG_WORDS.contains(&head)
                        && !LOCATIONS.contains(&head)
                        && !is_stopword(head)
                        && !is_demonym(head)
                    {
                        add(head, ty);
                    }
                }
            }
            _ => {}
        }
    }
    found
        .into_iter()
        .filter_map(|(n, t)| t.map(|t| (n, t)))
        .collect()
}

/// Adjectives of nationality or region ("German", "Brazilian", "Polish"),
/// which never name an organization on their own.
fn is_demonym(w: &str) -> bool {
    ["an", "ian", "ish", "ese", "ic", "i", "ch"]
        .iter()
        .any(|s| w.len() > 4 && w.ends_with(s))
        || matches!(
            w,
            "Royal" | "National" | "International" | "General" | "United" | "Global" | "First"
        )
}

/// A run of capitalised words, maybe joined by connectors, as token
/// indices `[start, end)`.
#[derive(Clone, Copy, Debug)]
struct Seq {
    start: usize,
    end: usize,
}

/// Finds capitalised sequences. Connectors (`of`, `de`, `&`, ...) join two
/// capitalised words; `and` joins only before a final organization word
/// ("Material Flow and Logistics").
fn sequences(text: &str, toks: &[Tok<'_>]) -> Vec<Seq> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if !toks[i].is_cap() || toks[i].title_case_line {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        while let Some(next) = toks.get(end) {
            if !joined_by_space(text, &toks[end - 1], next) {
                break;
            }
            if next.is_cap() {
                end += 1;
                continue;
            }
            let connector =
                (next.kind == Kind::Word && CONNECTORS.contains(&next.text)) || next.is_punct('&');
            let Some(after) = toks.get(end + 1) else {
                break;
            };
            if !connector || !after.is_cap() || !joined_by_space(text, next, after) {
                break;
            }
            if next.text == "and" {
                let single_final = !toks
                    .get(end + 2)
                    .is_some_and(|t| t.is_cap() && joined_by_space(text, after, t));
                if !(single_final && ORG_WORDS.contains(&after.text)) {
                    break;
                }
            }
            end += 2;
        }
        out.push(Seq { start, end });
        i = end;
    }
    out
}

fn is_title(t: &Tok<'_>) -> bool {
    t.kind == Kind::Word && TITLES.contains(&t.text)
}

/// Ends a person's name: organization and place words, legal forms.
fn ends_name(t: &Tok<'_>) -> bool {
    ORG_WORDS.contains(&t.text)
        || LEGAL_FORMS.contains(&t.text)
        || PLACE_WORDS.contains(&t.text)
        || ORG_HEADS.contains(&t.text)
        || is_stopword(t.text)
        || is_month(t.text)
        || is_weekday(t.text)
}

/// The name words starting at token `i` (capitalised words, particles
/// between them), at most `max` capitalised words; the end token index.
fn name_words(text: &str, toks: &[Tok<'_>], i: usize, max: usize) -> Option<usize> {
    let mut end = i;
    let mut caps = 0;
    while caps < max {
        let Some(t) = toks.get(end) else { break };
        if end > i && !joined_by_space(text, &toks[end - 1], t) {
            break;
        }
        if t.is_cap() && !ends_name(t) && t.text.chars().count() > 1 {
            caps += 1;
            end += 1;
            continue;
        }
        // A particle inside the name: "Ludwig van Beethoven".
        let particle = t.kind == Kind::Word && NAME_PARTICLES.contains(&t.text);
        let next_cap = toks
            .get(end + 1)
            .is_some_and(|n| n.is_cap() && joined_by_space(text, t, n));
        if caps > 0 && particle && next_cap {
            end += 1;
            continue;
        }
        break;
    }
    (caps > 0).then_some(end)
}

fn push(
    out: &mut Vec<Cand>,
    toks: &[Tok<'_>],
    from: usize,
    to: usize,
    ty: BuiltinType,
    strength: Strength,
    rule: &'static str,
) {
    if from < to {
        out.push(Cand {
            start: toks[from].start,
            end: toks[to - 1].end,
            ty: Ty::Builtin(ty),
            strength,
            rule,
        });
    }
}

/// The capitalisation rules.
fn rules(text: &str, toks: &[Tok<'_>], out: &mut Vec<Cand>) {
    // People after a title: "Dr. Ingrid Halvorsen", "Mayor Anna Zielińska".
    for (i, t) in toks.iter().enumerate() {
        if !is_title(t) || t.title_case_line {
            continue;
        }
        let mut j = i + 1;
        if toks
            .get(j)
            .is_some_and(|p| p.is_punct('.') && p.start == t.end)
        {
            j += 1;
        }
        let Some(first) = toks.get(j) else { continue };
        if !joined_by_space(text, &toks[j - 1], first) {
            continue;
        }
        if let Some(end) = name_words(text, toks, j, 3) {
            push(
                out,
                toks,
                j,
                end,
                BuiltinType::Person,
                Strength::Rule,
                "title",
            );
        }
    }
    // People by first name: "Zoë Müller" (a first name and a surname).
    for (i, t) in toks.iter().enumerate() {
        if t.kind != Kind::Word || t.title_case_line || !FIRST_NAMES.contains(&t.text) {
            continue;
        }
        if let Some(end) = name_words(text, toks, i, 3) {
            if end - i >= 2 {
                push(
                    out,
                    toks,
                    i,
                    end,
                    BuiltinType::Person,
                    Strength::Rule,
                    "first-name",
                );
            }
        }
    }
    // People and organizations introduced by a noun: "the photographer
    // Marta Nowak", "the law firm Lindqvist & Berg".
    let seqs = sequences(text, toks);
    for s in &seqs {
        let Some(prev) = s.start.checked_sub(1).map(|p| &toks[p]) else {
            continue;
        };
        if !prev.is_lower() || !joined_by_space(text, prev, &toks[s.start]) {
            continue;
        }
        let first = &toks[s.start];
        if is_title(first) || is_stopword(first.text) {
            continue;
        }
        if PERSON_ROLES.contains(&prev.text) {
            if let Some(end) = name_words(text, toks, s.start, 3) {
                push(
                    out,
                    toks,
                    s.start,
                    end.min(s.end),
                    BuiltinType::Person,
                    Strength::Rule,
                    "role",
                );
            }
        }
        if ORG_DESCRIPTORS.contains(&prev.text) {
            push(
                out,
                toks,
                s.start,
                s.end,
                BuiltinType::Organization,
                Strength::Rule,
                "descriptor",
            );
        }
    }
    for s in &seqs {
        let mut start = s.start;
        while start < s.end && (is_stopword(toks[start].text) || is_title(&toks[start])) {
            start += 1;
        }
        // Never start on a connector.
        while start < s.end && !toks[start].is_cap() {
            start += 1;
        }
        if start >= s.end {
            continue;
        }
        let words = &toks[start..s.end];
        // Organizations: "... University of X", "Orquestra ...", "... GmbH".
        let keyword_of = words.iter().enumerate().position(|(k, w)| {
            (ORG_WORDS.contains(&w.text) || ORG_HEADS.contains(&w.text))
                && words
                    .get(k + 1)
                    .is_some_and(|c| matches!(c.text, "of" | "for" | "de" | "do" | "da"))
        });
        let head = ORG_HEADS.contains(&words[0].text) && words.len() >= 2;
        let last_org = words
            .iter()
            .rposition(|w| ORG_WORDS.contains(&w.text) || LEGAL_FORMS.contains(&w.text));
        if keyword_of.is_some() || head {
            push(
                out,
                toks,
                start,
                s.end,
                BuiltinType::Organization,
                Strength::Rule,
                "organization",
            );
        } else if let Some(k) = last_org.filter(|k| *k > 0) {
            let mut end = start + k + 1;
            // "Inc." and "S.A." keep their period.
            if LEGAL_FORMS.contains(&toks[end - 1].text)
                && toks
                    .get(end)
                    .is_some_and(|p| p.is_punct('.') && p.start == toks[end - 1].end)
            {
                end += 1;
            }
            push(
                out,
                toks,
                start,
                end,
                BuiltinType::Organization,
                Strength::Rule,
                "organization",
            );
        }
        // Landmarks: "Pena Palace", "Dom Luís I Bridge".
        if let Some(k) = words.iter().rposition(|w| PLACE_WORDS.contains(&w.text)) {
            if k > 0 {
                push(
                    out,
                    toks,
                    start,
                    start + k + 1,
                    BuiltinType::Location,
                    Strength::Rule,
                    "landmark",
                );
            }
        }
        // Places before a place noun: "the Zabłocie district".
        if let Some(next) = toks.get(s.end) {
            if next.kind == Kind::Word
                && PLACE_NOUNS.contains(&next.text)
                && joined_by_space(text, &toks[s.end - 1], next)
            {
                push(
                    out,
                    toks,
                    start,
                    s.end,
                    BuiltinType::Location,
                    Strength::Rule,
                    "place-noun",
                );
            }
        }
        // Weak: "in <Capitalised>", up to a connector.
        if let Some(prev) = s.start.checked_sub(1).map(|p| &toks[p]) {
            let first = &toks[s.start];
            let eligible = prev.kind == Kind::Word
                && PLACE_PREPOSITIONS.contains(&prev.text)
                && joined_by_space(text, prev, first)
                && !is_stopword(first.text)
                && !is_title(first)
                && !is_month(first.text)
                && !is_weekday(first.text)
                && !FIRST_NAMES.contains(&first.text)
                && first.text.chars().count() > 1
                && !words
                    .iter()
                    .any(|w| ORG_WORDS.contains(&w.text) || LEGAL_FORMS.contains(&w.text));
            if eligible {
                let mut end = s.start + 1;
                while end < s.end && toks[end].is_cap() {
                    end += 1;
                }
                push(
                    out,
                    toks,
                    s.start,
                    end,
                    BuiltinType::Location,
                    Strength::Weak,
                    "preposition",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, ty: &str) -> Vec<String> {
        Recognizer::new()
            .find(text, ty)
            .unwrap()
            .into_iter()
            .map(|m| text[m.start..m.end].to_owned())
            .collect()
    }

    #[test]
    fn people() {
        assert_eq!(
            found("Dr. Ingrid Halvorsen met Zoë Müller and the photographer Calouste Gulbenkian. Müller laughed.", "Person"),
            ["Ingrid Halvorsen", "Zoë Müller", "Calouste Gulbenkian", "Müller"]
        );
    }

    #[test]
    fn organizations() {
        assert_eq!(
            found("Helix Dynamics GmbH works with the University of São Paulo, Nordbank AG and the law firm Lindqvist & Berg. Helix Dynamics grew; Nordbank lent.", "Organization"),
            ["Helix Dynamics GmbH", "University of São Paulo", "Nordbank AG", "Lindqvist & Berg", "Helix Dynamics", "Nordbank"]
        );
    }

    #[test]
    fn locations() {
        assert_eq!(
            found("KRAKÓW — She flew from Toronto to Kraków, walked in the Zabłocie district and crossed the Dom Luís I Bridge. Tours by Lisboa Walks.", "Location"),
            ["KRAKÓW", "Toronto", "Kraków", "Zabłocie", "Dom Luís I Bridge"]
        );
    }

    #[test]
    fn custom_types_and_synonyms() {
        let r = Recognizer::new().with_names("Crop", ["maize", "potato"]);
        let text = "Maize and potato at the International Potato Center.";
        let got: Vec<&str> = r
            .find(text, "crop")
            .unwrap()
            .iter()
            .map(|m| &text[m.start..m.end])
            .collect();
        assert_eq!(got, ["Maize", "potato"]);
        assert_eq!(
            r.canonical_type("organisation").as_deref(),
            Some("Organization")
        );
        assert_eq!(r.canonical_type("Weapon"), None);
    }
}
