//! Checkpoints of resumable jobs: the units of work a job has finished
//! (`completedUnits`) and where it stands inside unfinished ones
//! (`unitCursors`), and the pure rules that merge a new checkpoint into the
//! stored one.
//!
//! The field names and merge rules are those of the upstream TypeScript
//! package's later versions, so records stay readable both ways:
//!
//! - `completedUnits` is a set: a checkpoint adds units (union), the stored
//!   list is kept sorted and without duplicates;
//! - `unitCursors` maps a unit to `{ "next", "size", "found", "emitted",
//!   "errors" }`; a new cursor replaces the stored one only when its `next`
//!   is strictly greater (a late or repeated write never moves a cursor
//!   back);
//! - a unit's cursor is removed when the unit completes;
//! - both keys are absent from the job document when empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Longest accepted unit name, in bytes.
pub const MAX_UNIT_LEN: usize = 256;
/// Most units one job may record (completed plus cursors).
pub const MAX_UNITS: usize = 10_000;

/// Where a job stands inside one unit of work, e.g. the next chunk of a long
/// document for one entity type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitCursor {
    /// The next position to work on (a chunk index, an offset, ...): work
    /// before it is done and its effects are stored.
    pub next: u64,
    /// The unit's size in the same measure (0 when unknown).
    #[serde(default)]
    pub size: u64,
    /// Items found so far in the unit (detection: mentions).
    #[serde(default)]
    pub found: u64,
    /// Items written so far in the unit (detection: annotations).
    #[serde(default)]
    pub emitted: u64,
    /// Errors counted so far in the unit.
    #[serde(default)]
    pub errors: u64,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl UnitCursor {
    /// A cursor at `next` of `size`, with no counts.
    pub fn at(next: u64, size: u64) -> Self {
        UnitCursor {
            next,
            size,
            ..Default::default()
        }
    }
}

/// What a running job reports as done since its last checkpoint: units it
/// finished and cursors of units it is inside. Merged into the job's stored
/// checkpoint by [`merge_checkpoint`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Units finished (their effects are stored).
    pub completed: Vec<String>,
    /// Positions inside unfinished units.
    pub cursors: BTreeMap<String, UnitCursor>,
}

impl Checkpoint {
    /// A checkpoint marking one unit complete.
    pub fn unit_done(unit: impl Into<String>) -> Self {
        Checkpoint {
            completed: vec![unit.into()],
            cursors: BTreeMap::new(),
        }
    }

    /// A checkpoint moving the cursor of `unit`.
    pub fn cursor(unit: impl Into<String>, cursor: UnitCursor) -> Self {
        let mut cursors = BTreeMap::new();
        cursors.insert(unit.into(), cursor);
        Checkpoint {
            completed: Vec::new(),
            cursors,
        }
    }

    /// Adds a finished unit.
    pub fn with_done(mut self, unit: impl Into<String>) -> Self {
        self.completed.push(unit.into());
        self
    }

    /// Whether the checkpoint records nothing.
    pub fn is_empty(&self) -> bool {
        self.completed.is_empty() && self.cursors.is_empty()
    }

    /// Checks unit names (1 to [`MAX_UNIT_LEN`] bytes, no control
    /// characters) and the number of units ([`MAX_UNITS`]).
    pub fn validate(&self) -> Result<()> {
        if self.completed.len() + self.cursors.len() > MAX_UNITS {
            return Err(Error::InvalidCheckpoint(format!(
                "{} units, more than the limit of {MAX_UNITS}",
                self.completed.len() + self.cursors.len()
            )));
        }
        for unit in self.completed.iter().chain(self.cursors.keys()) {
            validate_unit(unit)?;
        }
        for (unit, cursor) in &self.cursors {
            if crate::json_depth(&Value::Object(cursor.extra.clone())) > 8 {
                return Err(Error::InvalidCheckpoint(format!(
                    "the cursor of unit {unit:?} nests its extra fields too deeply"
                )));
            }
        }
        Ok(())
    }
}

/// Checks one unit name.
pub fn validate_unit(unit: &str) -> Result<()> {
    let short: String = unit.chars().take(64).collect();
    if unit.is_empty() {
        return Err(Error::InvalidCheckpoint("a unit name is empty".into()));
    }
    if unit.len() > MAX_UNIT_LEN {
        return Err(Error::InvalidCheckpoint(format!(
            "unit {short:?}… is {} bytes, more than {MAX_UNIT_LEN}",
            unit.len()
        )));
    }
    if unit.chars().any(char::is_control) {
        return Err(Error::InvalidCheckpoint(format!(
            "unit {short:?} contains a control character"
        )));
    }
    Ok(())
}

/// Merges `new` into a job's stored checkpoint (`completed`, `cursors`), by
/// the rules in the module docs: union of completed units (sorted, no
/// duplicates), a cursor replaced only by one with a strictly greater
/// `next`, no cursor for a completed unit. Returns whether anything changed.
///
/// The stored values may come from another writer in any order; the result
/// is normalised either way. A pure function: every backend (and a database
/// statement implementing the same rules) computes the same result.
pub fn merge_checkpoint(
    completed: &mut Vec<String>,
    cursors: &mut BTreeMap<String, UnitCursor>,
    new: &Checkpoint,
) -> bool {
    let before = (completed.clone(), cursors.clone());
    completed.extend(new.completed.iter().cloned());
    completed.sort_unstable();
    completed.dedup();
    for (unit, cursor) in &new.cursors {
        match cursors.get(unit) {
            Some(stored) if stored.next >= cursor.next => {}
            _ => {
                cursors.insert(unit.clone(), cursor.clone());
            }
        }
    }
    cursors.retain(|unit, _| completed.binary_search(unit).is_err());
    (completed.clone(), cursors.clone()) != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(next: u64) -> UnitCursor {
        UnitCursor::at(next, 10)
    }

    fn units(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn cursors(v: &[(&str, u64)]) -> BTreeMap<String, UnitCursor> {
        v.iter().map(|(u, n)| ((*u).to_owned(), cur(*n))).collect()
    }

    /// Completed units and cursors (unit, next) of one side of a row.
    type Side<'a> = (&'a [&'a str], &'a [(&'a str, u64)]);
    /// The expected result: completed units, cursors, whether it changed.
    type Outcome<'a> = (&'a [&'a str], &'a [(&'a str, u64)], bool);

    /// One row of the merge table: stored + new → expected.
    fn check(stored: Side<'_>, new: Side<'_>, expected: Outcome<'_>) {
        let mut completed = units(stored.0);
        let mut cs = cursors(stored.1);
        let cp = Checkpoint {
            completed: units(new.0),
            cursors: cursors(new.1),
        };
        let changed = merge_checkpoint(&mut completed, &mut cs, &cp);
        assert_eq!(
            (completed, cs, changed),
            (units(expected.0), cursors(expected.1), expected.2),
            "stored {stored:?} + new {new:?}"
        );
    }

    #[test]
    fn merge_table() {
        let table: &[(Side<'_>, Side<'_>, Outcome<'_>)] = &[
            // nothing + nothing
            ((&[], &[]), (&[], &[]), (&[], &[], false)),
            // a first completed unit
            ((&[], &[]), (&["b"], &[]), (&["b"], &[], true)),
            // union, kept sorted
            (
                (&["c"], &[]),
                (&["a", "b"], &[]),
                (&["a", "b", "c"], &[], true),
            ),
            // a unit completed twice is recorded once
            ((&["a"], &[]), (&["a"], &[]), (&["a"], &[], false)),
            // duplicates within the new checkpoint
            ((&[], &[]), (&["a", "a"], &[]), (&["a"], &[], true)),
            // unsorted stored list (another writer) is normalised
            (
                (&["b", "a", "b"], &[]),
                (&[], &[]),
                (&["a", "b"], &[], true),
            ),
            // a first cursor
            ((&[], &[]), (&[], &[("a", 2)]), (&[], &[("a", 2)], true)),
            // a cursor moves forward
            (
                (&[], &[("a", 2)]),
                (&[], &[("a", 3)]),
                (&[], &[("a", 3)], true),
            ),
            // an equal next does not replace (strictly greater only)
            (
                (&[], &[("a", 3)]),
                (&[], &[("a", 3)]),
                (&[], &[("a", 3)], false),
            ),
            // a cursor never moves back
            (
                (&[], &[("a", 5)]),
                (&[], &[("a", 1)]),
                (&[], &[("a", 5)], false),
            ),
            // cursors of other units are kept
            (
                (&[], &[("a", 5)]),
                (&[], &[("b", 1)]),
                (&[], &[("a", 5), ("b", 1)], true),
            ),
            // completing a unit removes its cursor
            (
                (&[], &[("a", 5), ("b", 1)]),
                (&["a"], &[]),
                (&["a"], &[("b", 1)], true),
            ),
            // a cursor for a unit completed in the same checkpoint is dropped
            ((&[], &[]), (&["a"], &[("a", 9)]), (&["a"], &[], true)),
            // a cursor for a unit completed earlier is dropped
            ((&["a"], &[]), (&[], &[("a", 9)]), (&["a"], &[], false)),
            // completion and a cursor of another unit at once
            (
                (&["a"], &[("b", 1)]),
                (&["b"], &[("c", 4)]),
                (&["a", "b"], &[("c", 4)], true),
            ),
        ];
        for (stored, new, expected) in table {
            check(*stored, *new, *expected);
        }
    }

    #[test]
    fn replacing_a_cursor_takes_all_its_counts() {
        let mut completed = Vec::new();
        let mut cs = BTreeMap::new();
        let mut first = UnitCursor::at(1, 4);
        first.found = 3;
        merge_checkpoint(&mut completed, &mut cs, &Checkpoint::cursor("a", first));
        let mut second = UnitCursor::at(2, 4);
        second.found = 5;
        second.emitted = 5;
        second.errors = 1;
        second.extra.insert("note".into(), Value::from("x"));
        merge_checkpoint(
            &mut completed,
            &mut cs,
            &Checkpoint::cursor("a", second.clone()),
        );
        assert_eq!(cs["a"], second);
    }

    #[test]
    fn merging_is_idempotent_and_order_independent_for_units() {
        let a = Checkpoint::unit_done("x").with_done("y");
        let b = Checkpoint::unit_done("z");
        let (mut c1, mut k1) = (Vec::new(), BTreeMap::new());
        merge_checkpoint(&mut c1, &mut k1, &a);
        merge_checkpoint(&mut c1, &mut k1, &b);
        let (mut c2, mut k2) = (Vec::new(), BTreeMap::new());
        merge_checkpoint(&mut c2, &mut k2, &b);
        merge_checkpoint(&mut c2, &mut k2, &a);
        assert_eq!((&c1, &k1), (&c2, &k2));
        assert!(!merge_checkpoint(&mut c1, &mut k1, &a), "again: no change");
    }

    #[test]
    fn cursor_json_shape() {
        let mut c = UnitCursor::at(3, 7);
        c.found = 2;
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"next": 3, "size": 7, "found": 2, "emitted": 0, "errors": 0})
        );
        let back: UnitCursor =
            serde_json::from_value(serde_json::json!({"next": 1, "later": [1]})).unwrap();
        assert_eq!(back.next, 1);
        assert_eq!(back.extra["later"], serde_json::json!([1]));
    }

    #[test]
    fn bad_units_are_named() {
        for (cp, needle) in [
            (Checkpoint::unit_done(""), "empty"),
            (Checkpoint::unit_done("a\nb"), "control character"),
            (Checkpoint::unit_done("x".repeat(300)), "more than 256"),
            (Checkpoint::cursor("", UnitCursor::at(1, 1)), "empty"),
        ] {
            let e = cp.validate().unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
            assert!(e.to_string().starts_with("invalid checkpoint: "), "{e}");
        }
        let many = Checkpoint {
            completed: (0..=MAX_UNITS).map(|i| i.to_string()).collect(),
            cursors: BTreeMap::new(),
        };
        assert!(many.validate().unwrap_err().to_string().contains("10000"));
        Checkpoint::unit_done("Person").validate().unwrap();
    }
}
