//! Compact job keys for the in-memory index: ids of the `job-<uuid>` form
//! are kept as 16 bytes, anything else as its text, and both order exactly
//! like the id strings do.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use semiont_jobs_model::JobId;

/// A job id as the index keeps it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// `job-` + a lowercase hyphenated UUID, as its 16 bytes.
    Uuid([u8; 16]),
    /// Any other valid id.
    Other(Box<str>),
}

const PREFIX: &str = "job-";
const HEX: &[u8; 16] = b"0123456789abcdef";
/// Byte positions of the hyphens in a hyphenated UUID.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibble = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if HYPHENS.contains(&i) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let v = hex_val(c)?;
        out[nibble / 2] |= if nibble.is_multiple_of(2) { v << 4 } else { v };
        nibble += 1;
    }
    Some(out)
}

fn render_uuid(bytes: &[u8; 16], out: &mut [u8; 40]) {
    out[..4].copy_from_slice(PREFIX.as_bytes());
    let mut pos = 4;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[pos] = b'-';
            pos += 1;
        }
        out[pos] = HEX[usize::from(byte >> 4)];
        out[pos + 1] = HEX[usize::from(byte & 0xf)];
        pos += 2;
    }
}

impl Key {
    /// The key of a (valid) id.
    pub fn of(id: &JobId) -> Key {
        Self::from_valid_str(id.as_str())
    }

    /// The key of an id string already validated by `JobId::parse`.
    pub fn from_valid_str(s: &str) -> Key {
        if let Some(rest) = s.strip_prefix(PREFIX) {
            if let Some(bytes) = parse_uuid(rest) {
                return Key::Uuid(bytes);
            }
        }
        Key::Other(s.into())
    }

    /// The key of a file name `<id>.json`, if the stem is a valid id.
    pub fn from_file_name(name: &str) -> Option<Key> {
        let stem = name.strip_suffix(".json")?;
        JobId::parse(stem).ok()?;
        Some(Self::from_valid_str(stem))
    }

    /// The key of a file name given as bytes (as `getdents` returns it):
    /// `job-<lowercase uuid>.json` without allocating, anything else as
    /// [`Key::from_file_name`] does.
    pub fn from_file_name_bytes(name: &[u8]) -> Option<Key> {
        if name.len() == PREFIX.len() + 36 + 5
            && name.starts_with(PREFIX.as_bytes())
            && name.ends_with(b".json")
        {
            let uuid = std::str::from_utf8(&name[PREFIX.len()..PREFIX.len() + 36]).ok()?;
            if let Some(bytes) = parse_uuid(uuid) {
                return Some(Key::Uuid(bytes));
            }
        }
        Self::from_file_name(std::str::from_utf8(name).ok()?)
    }

    /// Calls `f` with the file name `<id>.json`, without allocating for
    /// UUID ids.
    pub fn with_file_name<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        match self {
            Key::Uuid(bytes) => {
                let mut buf = [0u8; 45];
                let (id, ext) = buf.split_at_mut(40);
                let mut idbuf = [0u8; 40];
                render_uuid(bytes, &mut idbuf);
                id.copy_from_slice(&idbuf);
                ext.copy_from_slice(b".json");
                // The buffer holds ASCII only.
                f(std::str::from_utf8(&buf).unwrap_or_default())
            }
            Key::Other(_) => f(&self.file_name()),
        }
    }

    /// Calls `f` with the id text, without allocating for UUID ids.
    pub fn with_str<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        match self {
            Key::Uuid(bytes) => {
                let mut buf = [0u8; 40];
                render_uuid(bytes, &mut buf);
                // The buffer holds ASCII only.
                f(std::str::from_utf8(&buf).unwrap_or_default())
            }
            Key::Other(s) => f(s),
        }
    }

    /// The job id.
    pub fn id(&self) -> JobId {
        self.with_str(|s| JobId::parse(s).unwrap_or_else(|_| JobId::generate()))
    }

    /// The file name `<id>.json`.
    pub fn file_name(&self) -> String {
        self.with_str(|s| {
            let mut name = String::with_capacity(s.len() + 5);
            name.push_str(s);
            name.push_str(".json");
            name
        })
    }

    /// A stable hash for lock striping (FNV-1a over the id text's bytes).
    pub fn stripe_hash(&self) -> u64 {
        self.with_str(|s| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in s.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h
        })
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            // Big-endian bytes order like their lowercase hex renderings.
            (Key::Uuid(a), Key::Uuid(b)) => a.cmp(b),
            (Key::Other(a), Key::Other(b)) => a.cmp(b),
            _ => self.with_str(|a| other.with_str(|b| a.cmp(b))),
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|s| f.write_str(s))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|s| f.write_str(s))
    }
}

/// Maps strings (job types, user ids, worker ids) to small numbers, so the
/// index stores each distinct string once.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    map: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    /// The number of `s`, adding it if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(s.into());
        self.map.insert(s.into(), i);
        i
    }

    /// The number of `s`, if known.
    pub fn find(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }

    /// Every string, by number.
    pub fn names(&self) -> &[Box<str>] {
        &self.names
    }

    /// The string of number `i`.
    pub fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map_or("", |s| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_keys_round_trip_and_order_like_strings() {
        let mut ids: Vec<JobId> = (0..200).map(|_| JobId::generate()).collect();
        ids.push(JobId::parse("job-abc123xyz").unwrap());
        ids.push(JobId::parse("job-0").unwrap());
        ids.push(JobId::parse("job-ffffffff-ffff-ffff-ffff-ffffffffffff0").unwrap());
        ids.push(JobId::parse("job-00000000-0000-0000-0000-000000000000").unwrap());
        ids.push(JobId::parse("zzz").unwrap());
        ids.push(JobId::parse("JOB-X").unwrap());
        ids.push(JobId::parse("job-0193C1F0-8A2B-7CDE-8F01-23456789ABCD").unwrap());
        for id in &ids {
            let k = Key::of(id);
            assert_eq!(k.id(), *id);
            assert_eq!(k.file_name(), format!("{id}.json"));
            assert_eq!(Key::from_file_name(&k.file_name()), Some(k.clone()));
            assert_eq!(
                Key::from_file_name_bytes(k.file_name().as_bytes()),
                Some(k.clone())
            );
            assert_eq!(k.with_file_name(|n| n.to_owned()), k.file_name());
        }
        assert!(matches!(Key::of(&ids[0]), Key::Uuid(_)));
        assert!(matches!(
            Key::of(&JobId::parse("job-0193C1F0-8A2B-7CDE-8F01-23456789ABCD").unwrap()),
            Key::Other(_)
        ));
        for a in &ids {
            for b in &ids {
                assert_eq!(Key::of(a).cmp(&Key::of(b)), a.cmp(b), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn bad_file_names_have_no_key() {
        for bad in [
            "x",
            "job-1.txt",
            ".json",
            "../x.json",
            "a b.json",
            "job-0193c1f0-8a2b-7cde-8f01-23456789abcd.jso",
            "job-0193c1f0-8a2b-7cde-8f01-23456789abcd.json.",
        ] {
            assert_eq!(Key::from_file_name(bad), None, "{bad}");
            assert_eq!(Key::from_file_name_bytes(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(Key::from_file_name_bytes(b"job-\xff.json"), None);
    }
}
