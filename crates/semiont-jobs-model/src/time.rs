//! Timestamps: milliseconds since the Unix epoch, written as RFC 3339 UTC
//! with millisecond precision, like JavaScript's `Date.toISOString()`.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// A point in time, in whole milliseconds since 1970-01-01T00:00:00Z.
///
/// Serialized as `YYYY-MM-DDTHH:MM:SS.sssZ`. Parsing accepts RFC 3339 with any
/// number of fractional digits (truncated to milliseconds) and `Z` or a
/// `±HH:MM` offset.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// Smallest year we format (RFC 3339 needs four digits).
const MIN_MS: i64 = -62_135_596_800_000; // 0001-01-01T00:00:00Z
/// Largest: 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;

impl Timestamp {
    /// The current system time.
    pub fn now() -> Self {
        let ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(MAX_MS),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(0),
        };
        Timestamp(ms.clamp(MIN_MS, MAX_MS))
    }

    /// From milliseconds since the epoch (clamped to years 1..=9999).
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(if ms < MIN_MS {
            MIN_MS
        } else if ms > MAX_MS {
            MAX_MS
        } else {
            ms
        })
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This time plus `d` (saturating at year 9999). Same as `self + d`.
    #[allow(
        clippy::should_implement_trait,
        reason = "`Add<Duration>` is implemented too; the method reads better in chains"
    )]
    pub fn add(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_millis(self.0.saturating_add(ms))
    }

    /// This time minus `d` (saturating at year 1). Same as `self - d`.
    #[allow(
        clippy::should_implement_trait,
        reason = "`Sub<Duration>` is implemented too; the method reads better in chains"
    )]
    pub fn sub(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_millis(self.0.saturating_sub(ms))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    /// Parses RFC 3339 text.
    pub fn parse(s: &str) -> Result<Self> {
        parse_rfc3339(s).map_err(|reason| Error::InvalidTimestamp {
            value: s.chars().take(64).collect(),
            reason,
        })
    }
}

// Howard Hinnant's civil-from-days and days-from-civil algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

fn parse_rfc3339(s: &str) -> std::result::Result<Timestamp, &'static str> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> std::result::Result<i64, &'static str> {
        let part = b.get(range).ok_or("too short")?;
        let mut v = 0i64;
        for &c in part {
            if !c.is_ascii_digit() {
                return Err("expected a digit");
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Ok(v)
    };
    let sep = |i: usize, want: &[u8]| -> std::result::Result<(), &'static str> {
        match b.get(i) {
            Some(c) if want.contains(c) => Ok(()),
            _ => Err("expected YYYY-MM-DDTHH:MM:SS"),
        }
    };
    let year = num(0..4)?;
    sep(4, b"-")?;
    let month = num(5..7)?;
    sep(7, b"-")?;
    let day = num(8..10)?;
    sep(10, b"Tt ")?;
    let hour = num(11..13)?;
    sep(13, b":")?;
    let minute = num(14..16)?;
    sep(16, b":")?;
    let second = num(17..19)?;
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("date out of range");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time out of range");
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return Err("empty fraction");
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) if i + 6 == b.len() => {
            sep(i + 3, b":")?;
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return Err("offset out of range");
            }
            let m = oh * 60 + om;
            if c == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return Err("expected 'Z' or a ±HH:MM offset"),
    };
    let second = second.min(59); // a leap second reads as :59
    let days = days_from_civil(year, month, day);
    let ms =
        ((days * 86_400 + hour * 3600 + minute * 60 + second) - offset_min * 60) * 1000 + millis;
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return Err("outside years 1..=9999");
    }
    Ok(Timestamp(ms))
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp::add(self, d)
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp::sub(self, d)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3_600_000,
            rem / 60_000 % 60,
            rem / 1000 % 60,
            rem % 1000
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        let t = Timestamp::parse("2024-01-15T10:30:00.000Z").unwrap();
        assert_eq!(t.as_millis(), 1_705_314_600_000);
        assert_eq!(t.to_string(), "2024-01-15T10:30:00.000Z");
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::parse("2024-02-29T23:59:59.9999+01:00")
                .unwrap()
                .to_string(),
            "2024-02-29T22:59:59.999Z"
        );
        assert_eq!(
            Timestamp::parse("1969-12-31T23:59:59Z")
                .unwrap()
                .as_millis(),
            -1000
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2024",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00Zjunk",
            "yesterday",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(ms in MIN_MS..=MAX_MS) {
            let t = Timestamp::from_millis(ms);
            prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        }
    }
}
