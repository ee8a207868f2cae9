//! Human durations on the command line: `500ms`, `90s`, `30m`, `24h`, `7d`
//! (the configuration file's format, `semiont_jobs::config::parse_duration`).

use std::time::Duration;

/// Parses a number followed by a unit (`ms`, `s`, `m`, `h`, `d`; plain
/// numbers are seconds).
pub fn parse(s: &str) -> Result<Duration, String> {
    semiont_jobs::config::parse_duration(s)
}
