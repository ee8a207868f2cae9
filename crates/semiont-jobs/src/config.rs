//! The configuration file (feature `config`): queue settings, retention and
//! per-type policies in TOML, shared by the `semiont-jobs` CLI (`--config`,
//! `SEMIONT_JOBS_CONFIG`) and any program that embeds the queue.
//!
//! ```toml
//! [queue]
//! max_retries = 3          # retry budget of jobs that set none
//! lease = "30s"            # lease of running jobs whose worker cannot be seen
//! timeout_grace = "5s"     # how long a timed-out job may take to stop
//!
//! [queue.retry]            # back-off between automatic retries
//! base_delay = "1s"
//! max_delay = "15m"
//! jitter = 0.5
//!
//! [retention]
//! period = "24h"           # finished jobs older than this are deleted
//! sweep = true             # workers sweep on a timer (one process at a time)
//! sweep_interval = "1h"
//!
//! [types.detection]        # one table per job type
//! max_retries = 5
//! priority = 10
//! timeout = "10m"          # execution timeout of one attempt
//! timeout_grace = "30s"
//! retry = { base_delay = "5s", max_delay = "10m", jitter = 0.2 }
//!
//! [model]                  # the model server of the detection and generation workers
//! inference = "ollama"     # offline, ollama or openai
//! model = "smollm2"
//! url = "http://127.0.0.1:11434"
//! context = 2048           # the model's context window, in tokens
//! max_tokens = 512         # most tokens per answer
//! chunk_chars = 3000       # most characters of a document per detection request
//! temperature = 0.0
//! concurrency = 1          # model calls one job may have in flight
//! read_timeout = "10m"     # how long to wait for an answer
//! ```
//!
//! Every key is optional; a missing one keeps the built-in default.
//! Durations are strings with a unit (`500ms`, `90s`, `30m`, `24h`, `7d`)
//! or whole seconds. A key or section this version does not know is an
//! error naming it (with the path of the file and the line), so a typo is
//! never silently ignored.
//!
//! Each `[model]` key stands for an environment variable of the inference
//! clients ([`ModelSection::VARIABLES`]): a `work` flag beats the variable,
//! and the variable beats the file. An API key is never read from the file
//! (only from `OPENAI_API_KEY`), so the file can be shared and committed.
//!
//! ```
//! use semiont_jobs::config::FileConfig;
//! use semiont_jobs::queue::JobQueueConfig;
//!
//! let file = FileConfig::parse(
//!     "[types.detection]\ntimeout = \"10m\"\n[retention]\nsweep = false\n",
//!     "example.toml",
//! )
//! .unwrap();
//! let mut config = JobQueueConfig::default();
//! file.apply_to(&mut config).unwrap();
//! let detection = config.policy(&"detection".parse().unwrap());
//! assert_eq!(detection.timeout, Some(std::time::Duration::from_secs(600)));
//! assert_eq!(file.sweep_interval(), Some(None)); // sweeping turned off
//!
//! let err = FileConfig::parse("[types.detection]\ntimout = \"10m\"\n", "example.toml").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "config file example.toml line 2: unknown key types.detection.timout \
//!      (expected one of: max_retries, priority, timeout, timeout_grace, retry)"
//! );
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use semiont_jobs_model::{JobType, RetryPolicy, MAX_MAX_RETRIES};
use semiont_jobs_queue::{JobQueueConfig, TypePolicy};
use toml::{Table, Value};

use crate::Error;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "SEMIONT_JOBS_CONFIG";

/// Largest configuration file read (1 MiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The `[queue]` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueSettings {
    /// `max_retries`: retry budget of jobs that set none.
    pub max_retries: Option<u32>,
    /// `lease`: lease of running jobs.
    pub lease: Option<Duration>,
    /// `timeout_grace`: how long a timed-out job may take to stop.
    pub timeout_grace: Option<Duration>,
    /// `[queue.retry]`: the back-off (missing keys: the built-in default's).
    pub retry: Option<RetryPolicy>,
}

/// The `[retention]` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetentionSettings {
    /// `period`: finished jobs older than this are deleted.
    pub period: Option<Duration>,
    /// `sweep`: whether workers sweep on a timer.
    pub sweep: Option<bool>,
    /// `sweep_interval`: how often.
    pub sweep_interval: Option<Duration>,
}

/// The `[model]` section: settings of the detection and generation
/// workers' model server, as the environment variables they stand for
/// (checked for type and range when the file is read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelSection {
    values: BTreeMap<&'static str, String>,
}

/// What a `[model]` value must be.
#[derive(Clone, Copy)]
enum ModelValue {
    /// `offline`, `ollama` or `openai`.
    Inference,
    /// `chat` or `generate`.
    OllamaApi,
    /// A non-empty string.
    Text,
    /// An integer in the range.
    Integer(i64, i64),
    /// A number in the range.
    Number(f64, f64),
    /// A duration, given to the variable in seconds.
    Seconds,
}

impl ModelSection {
    /// The keys of the section and the environment variables they stand
    /// for (`url` stands for both servers' variables).
    pub const VARIABLES: &'static [(&'static str, &'static [&'static str])] = &[
        ("inference", &["SEMIONT_INFERENCE"]),
        ("model", &["SEMIONT_INFERENCE_MODEL"]),
        ("url", &["OLLAMA_HOST", "OPENAI_BASE_URL"]),
        ("ollama_api", &["SEMIONT_OLLAMA_API"]),
        ("context", &["SEMIONT_INFERENCE_CONTEXT"]),
        ("max_tokens", &["SEMIONT_INFERENCE_MAX_TOKENS"]),
        ("chunk_chars", &["SEMIONT_INFERENCE_CHUNK_CHARS"]),
        ("temperature", &["SEMIONT_INFERENCE_TEMPERATURE"]),
        ("concurrency", &["SEMIONT_INFERENCE_CONCURRENCY"]),
        (
            "connect_timeout",
            &["SEMIONT_INFERENCE_CONNECT_TIMEOUT_SECS"],
        ),
        ("read_timeout", &["SEMIONT_INFERENCE_READ_TIMEOUT_SECS"]),
    ];

    fn kind(key: &str) -> Option<ModelValue> {
        Some(match key {
            "inference" => ModelValue::Inference,
            "ollama_api" => ModelValue::OllamaApi,
            "model" | "url" => ModelValue::Text,
            "context" => ModelValue::Integer(256, 100_000_000),
            "max_tokens" => ModelValue::Integer(1, 100_000_000),
            "chunk_chars" => ModelValue::Integer(100, 1 << 40),
            "concurrency" => ModelValue::Integer(1, 64),
            "temperature" => ModelValue::Number(0.0, 2.0),
            "connect_timeout" | "read_timeout" => ModelValue::Seconds,
            _ => return None,
        })
    }

    /// The value the file gives for the environment variable `variable`,
    /// as that variable would spell it.
    pub fn lookup(&self, variable: &str) -> Option<&str> {
        self.values.get(variable).map(String::as_str)
    }

    /// Whether the section sets nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn model_section(v: &Value) -> Found<ModelSection> {
    let table = as_table(v, "model")?;
    let mut out = ModelSection::default();
    for (key, value) in table {
        let name = join("model", key);
        if key == "api_key" {
            return Err(bad(
                &name,
                "model.api_key is not read from a file; set OPENAI_API_KEY in the environment",
            ));
        }
        let Some(kind) = ModelSection::kind(key) else {
            let keys: Vec<&str> = ModelSection::VARIABLES.iter().map(|(k, _)| *k).collect();
            return Err(bad(
                &name,
                format!("unknown key {name} (expected one of: {})", keys.join(", ")),
            ));
        };
        let text = match (kind, value) {
            (ModelValue::Inference, Value::String(t))
                if ["offline", "ollama", "openai"].contains(&t.as_str()) =>
            {
                t.clone()
            }
            (ModelValue::Inference, other) => {
                return Err(bad(
                    &name,
                    format!(
                        "{name} must be \"offline\", \"ollama\" or \"openai\", not {}",
                        describe(other)
                    ),
                ))
            }
            (ModelValue::OllamaApi, Value::String(t))
                if ["chat", "generate"].contains(&t.as_str()) =>
            {
                t.clone()
            }
            (ModelValue::OllamaApi, other) => {
                return Err(bad(
                    &name,
                    format!(
                        "{name} must be \"chat\" or \"generate\", not {}",
                        describe(other)
                    ),
                ))
            }
            (ModelValue::Text, Value::String(t)) if !t.trim().is_empty() => t.trim().to_owned(),
            (ModelValue::Text, other) => {
                return Err(bad(
                    &name,
                    format!("{name} must be a non-empty string, not {}", describe(other)),
                ))
            }
            (ModelValue::Integer(min, max), v) => integer(v, &name, min, max)?.to_string(),
            (ModelValue::Number(min, max), v) => {
                let n = match v {
                    Value::Float(f) => *f,
                    Value::Integer(n) => *n as f64,
                    other => {
                        return Err(bad(
                            &name,
                            format!("{name} must be a number, not {}", describe(other)),
                        ))
                    }
                };
                if !(min..=max).contains(&n) {
                    return Err(bad(&name, format!("{name} is {n}, outside {min}..={max}")));
                }
                n.to_string()
            }
            (ModelValue::Seconds, v) => positive_duration(v, &name)?.as_secs_f64().to_string(),
        };
        let variables = ModelSection::VARIABLES
            .iter()
            .find(|(k, _)| k == key)
            .map_or(&[][..], |(_, vars)| *vars);
        for variable in variables {
            out.values.insert(variable, text.clone());
        }
    }
    Ok(out)
}

/// A parsed configuration file. See the module docs for its format.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileConfig {
    /// `[queue]`.
    pub queue: QueueSettings,
    /// `[retention]`.
    pub retention: RetentionSettings,
    /// `[model]`.
    pub model: ModelSection,
    /// `[types.<type>]`, one per job type.
    pub types: BTreeMap<JobType, TypePolicy>,
}

/// A problem found at `key`, before the line is known.
struct Bad {
    key: String,
    reason: String,
}

fn bad(key: &str, reason: impl Into<String>) -> Bad {
    Bad {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

type Found<T> = std::result::Result<T, Bad>;

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn check_keys(table: &Table, prefix: &str, allowed: &[&str]) -> Found<()> {
    match table.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(
            &join(prefix, k),
            format!(
                "unknown key {} (expected one of: {})",
                join(prefix, k),
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn as_table<'a>(v: &'a Value, key: &str) -> Found<&'a Table> {
    v.as_table()
        .ok_or_else(|| bad(key, format!("{key} must be a table, not {}", v.type_str())))
}

/// Parses a duration: a whole number followed by `ms`, `s`, `m`, `h` or
/// `d` (a plain number is seconds).
///
/// ```
/// use std::time::Duration;
/// use semiont_jobs::config::parse_duration;
/// assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert!(parse_duration("1.5h").is_err());
/// ```
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 90s, 30m, 24h, 7d)"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?} (expected ms, s, m, h or d)"
            ))
        }
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

fn duration(v: &Value, key: &str) -> Found<Duration> {
    match v {
        Value::String(s) => parse_duration(s).map_err(|e| bad(key, format!("{key}: {e}"))),
        Value::Integer(n) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
        other => Err(bad(
            key,
            format!(
                "{key} must be a duration such as \"90s\" or \"30m\", not {}",
                describe(other)
            ),
        )),
    }
}

fn positive_duration(v: &Value, key: &str) -> Found<Duration> {
    let d = duration(v, key)?;
    if d.is_zero() {
        return Err(bad(key, format!("{key} must be longer than 0")));
    }
    Ok(d)
}

fn integer(v: &Value, key: &str, min: i64, max: i64) -> Found<i64> {
    match v {
        Value::Integer(n) if (min..=max).contains(n) => Ok(*n),
        Value::Integer(n) => Err(bad(key, format!("{key} is {n}, outside {min}..={max}"))),
        other => Err(bad(
            key,
            format!("{key} must be a whole number, not {}", describe(other)),
        )),
    }
}

fn boolean(v: &Value, key: &str) -> Found<bool> {
    v.as_bool().ok_or_else(|| {
        bad(
            key,
            format!("{key} must be true or false, not {}", describe(v)),
        )
    })
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {s:?}"),
        Value::Integer(n) => format!("the number {n}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => format!("{b}"),
        other => format!("a {}", other.type_str()),
    }
}

fn retry(v: &Value, key: &str) -> Found<RetryPolicy> {
    let t = as_table(v, key)?;
    check_keys(t, key, &["base_delay", "max_delay", "jitter"])?;
    let mut p = RetryPolicy::default();
    if let Some(v) = t.get("base_delay") {
        p.base_delay = duration(v, &join(key, "base_delay"))?;
    }
    if let Some(v) = t.get("max_delay") {
        p.max_delay = duration(v, &join(key, "max_delay"))?;
    }
    if let Some(v) = t.get("jitter") {
        let k = join(key, "jitter");
        let j = match v {
            Value::Float(f) => *f,
            Value::Integer(n) => *n as f64,
            other => {
                return Err(bad(
                    &k,
                    format!("{k} must be a number in 0..=1, not {}", describe(other)),
                ))
            }
        };
        if !(0.0..=1.0).contains(&j) {
            return Err(bad(&k, format!("{k} is {j}, outside 0..=1")));
        }
        p.jitter = j;
    }
    if p.base_delay > p.max_delay {
        return Err(bad(
            &join(key, "base_delay"),
            format!(
                "{key}.base_delay ({:?}) is longer than {key}.max_delay ({:?})",
                p.base_delay, p.max_delay
            ),
        ));
    }
    Ok(p)
}

fn max_retries(v: &Value, key: &str) -> Found<u32> {
    integer(v, key, 0, i64::from(MAX_MAX_RETRIES)).map(|n| n as u32)
}

fn queue_section(v: &Value) -> Found<QueueSettings> {
    let t = as_table(v, "queue")?;
    check_keys(
        t,
        "queue",
        &["max_retries", "lease", "timeout_grace", "retry"],
    )?;
    Ok(QueueSettings {
        max_retries: t
            .get("max_retries")
            .map(|v| max_retries(v, "queue.max_retries"))
            .transpose()?,
        lease: t
            .get("lease")
            .map(|v| positive_duration(v, "queue.lease"))
            .transpose()?,
        timeout_grace: t
            .get("timeout_grace")
            .map(|v| duration(v, "queue.timeout_grace"))
            .transpose()?,
        retry: t
            .get("retry")
            .map(|v| retry(v, "queue.retry"))
            .transpose()?,
    })
}

fn retention_section(v: &Value) -> Found<RetentionSettings> {
    let t = as_table(v, "retention")?;
    check_keys(t, "retention", &["period", "sweep", "sweep_interval"])?;
    Ok(RetentionSettings {
        period: t
            .get("period")
            .map(|v| duration(v, "retention.period"))
            .transpose()?,
        sweep: t
            .get("sweep")
            .map(|v| boolean(v, "retention.sweep"))
            .transpose()?,
        sweep_interval: t
            .get("sweep_interval")
            .map(|v| positive_duration(v, "retention.sweep_interval"))
            .transpose()?,
    })
}

fn type_section(name: &str, v: &Value) -> Found<(JobType, TypePolicy)> {
    let key = format!("types.{name}");
    let job_type = JobType::parse(name).map_err(|e| bad(&key, format!("types.{name}: {e}")))?;
    let t = as_table(v, &key)?;
    check_keys(
        t,
        &key,
        &[
            "max_retries",
            "priority",
            "timeout",
            "timeout_grace",
            "retry",
        ],
    )?;
    let k = |s: &str| join(&key, s);
    let policy = TypePolicy {
        max_retries: t
            .get("max_retries")
            .map(|v| max_retries(v, &k("max_retries")))
            .transpose()?,
        priority: t
            .get("priority")
            .map(|v| {
                integer(v, &k("priority"), i64::from(i16::MIN), i64::from(i16::MAX))
                    .map(|n| n as i16)
            })
            .transpose()?,
        timeout: t
            .get("timeout")
            .map(|v| positive_duration(v, &k("timeout")))
            .transpose()?,
        timeout_grace: t
            .get("timeout_grace")
            .map(|v| duration(v, &k("timeout_grace")))
            .transpose()?,
        retry_policy: t.get("retry").map(|v| retry(v, &k("retry"))).transpose()?,
    };
    Ok((job_type, policy))
}

/// The 1-based line of the first place `key` (a dotted path) appears as a
/// key in `text`, or else its closest parent (a key inside an inline
/// table), for error messages; `None` when none can be found.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let mut key = key;
    loop {
        if let Some(line) = line_of_exact(text, key) {
            return Some(line);
        }
        key = key.rsplit_once('.')?.0;
    }
}

fn line_of_exact(text: &str, key: &str) -> Option<usize> {
    let squash = |s: &str| s.replace(['"', '\'', ' '], "");
    let key = squash(key);
    let key = key.as_str();
    let last = key.rsplit('.').next()?;
    let section = key.rsplit_once('.').map(|(s, _)| s);
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            let name = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("");
            current = squash(name);
            if current == key {
                return Some(i + 1);
            }
            continue;
        }
        let in_section =
            section.is_none_or(|s| s == current || s.starts_with(&format!("{current}.")));
        let name = squash(line.split('=').next().unwrap_or(""));
        let name = name.as_str();
        if in_section && name == last && line.contains('=') {
            return Some(i + 1);
        }
        if section.is_some_and(|s| s == current) && name == last {
            return Some(i + 1);
        }
    }
    None
}

impl FileConfig {
    /// Parses the text of a configuration file; `file` names it in errors.
    ///
    /// Errors ([`Error::Config`]): TOML syntax errors, unknown sections and
    /// keys, values of the wrong type or out of range — one line naming the
    /// file, the line and the key.
    pub fn parse(text: &str, file: &str) -> Result<FileConfig, Error> {
        let table: Table = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            Error::Config {
                file: file.to_owned(),
                line,
                reason: e.message().replace('\n', " ").trim().to_owned(),
            }
        })?;
        Self::from_table(&table).map_err(|b| Error::Config {
            file: file.to_owned(),
            line: line_of(text, &b.key),
            reason: b.reason,
        })
    }

    fn from_table(table: &Table) -> Found<FileConfig> {
        let mut out = FileConfig::default();
        for (name, value) in table {
            match name.as_str() {
                "queue" => out.queue = queue_section(value)?,
                "retention" => out.retention = retention_section(value)?,
                "types" => {
                    for (t, v) in as_table(value, "types")? {
                        let (job_type, policy) = type_section(t, v)?;
                        out.types.insert(job_type, policy);
                    }
                }
                "model" => out.model = model_section(value)?,
                other if value.is_table() => {
                    return Err(bad(
                        other,
                        format!(
                            "unknown section [{other}] (expected one of: queue, retention, types, model)"
                        ),
                    ))
                }
                other => {
                    return Err(bad(
                        other,
                        format!("unknown key {other} (expected the sections queue, retention, types, model)"),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Reads and parses the file at `path` (at most [`MAX_CONFIG_BYTES`]).
    pub fn load(path: &Path) -> Result<FileConfig, Error> {
        let file = path.display().to_string();
        let fail = |reason: String| Error::Config {
            file: file.clone(),
            line: None,
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(fail(format!(
                "{} bytes, more than the limit of {MAX_CONFIG_BYTES}",
                meta.len()
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        Self::parse(&text, &file)
    }

    /// Applies the file's settings over `config` (settings the file does
    /// not name keep their values) and validates the result.
    pub fn apply_to(&self, config: &mut JobQueueConfig) -> Result<(), Error> {
        let q = &self.queue;
        if let Some(n) = q.max_retries {
            config.max_retries = n;
        }
        if let Some(d) = q.lease {
            config.lease = d;
        }
        if let Some(d) = q.timeout_grace {
            config.timeout_grace = d;
        }
        if let Some(p) = q.retry {
            config.retry_policy = p;
        }
        if let Some(d) = self.retention.period {
            config.retention_period = d;
        }
        for (t, p) in &self.types {
            config.types.insert(t.clone(), p.clone());
        }
        config.validate()?;
        Ok(())
    }

    /// How often workers should sweep, if the file says: `Some(None)` for
    /// `sweep = false`, `Some(Some(d))` for a `sweep_interval` (or `sweep =
    /// true` with the default hourly interval), `None` when the file says
    /// nothing.
    pub fn sweep_interval(&self) -> Option<Option<Duration>> {
        match (self.retention.sweep, self.retention.sweep_interval) {
            (Some(false), _) => Some(None),
            (_, Some(d)) => Some(Some(d)),
            (Some(true), None) => Some(Some(Duration::from_secs(3600))),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        FileConfig::parse(text, "c.toml").unwrap_err().to_string()
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
[queue]
max_retries = 4
lease = "45s"
timeout_grace = 2

[queue.retry]
base_delay = "2s"
jitter = 0

[retention]
period = "7d"
sweep_interval = "30m"

[types.detection]
max_retries = 5
priority = -3
timeout = "10m"
retry = { base_delay = "5s", max_delay = "10m", jitter = 0.25 }

[types."my-job-type"]
timeout = 60
"#;
        let f = FileConfig::parse(text, "c.toml").unwrap();
        assert_eq!(f.queue.max_retries, Some(4));
        assert_eq!(f.queue.lease, Some(Duration::from_secs(45)));
        assert_eq!(f.queue.timeout_grace, Some(Duration::from_secs(2)));
        let r = f.queue.retry.unwrap();
        assert_eq!((r.base_delay, r.jitter), (Duration::from_secs(2), 0.0));
        assert_eq!(r.max_delay, RetryPolicy::default().max_delay);
        assert_eq!(f.sweep_interval(), Some(Some(Duration::from_secs(1800))));
        let det = &f.types[&JobType::Detection];
        assert_eq!((det.max_retries, det.priority), (Some(5), Some(-3)));
        assert_eq!(det.retry_policy.unwrap().jitter, 0.25);
        let mut config = JobQueueConfig::default();
        f.apply_to(&mut config).unwrap();
        assert_eq!(config.max_retries, 4);
        assert_eq!(config.retention_period, Duration::from_secs(7 * 86_400));
        let custom = config.policy(&JobType::parse("my-job-type").unwrap());
        assert_eq!(custom.timeout, Some(Duration::from_secs(60)));
        assert_eq!(custom.max_retries, 4, "the queue's");
        assert_eq!(
            FileConfig::parse("", "c.toml").unwrap(),
            FileConfig::default()
        );
        assert_eq!(FileConfig::default().sweep_interval(), None);
    }

    #[test]
    fn bad_files_name_the_key_and_line() {
        let table = [
            ("[queue]\nmax_retries = 500\n", "c.toml line 2: queue.max_retries is 500, outside 0..=100"),
            ("[queue]\nmax_retry = 5\n", "c.toml line 2: unknown key queue.max_retry (expected one of: max_retries, lease, timeout_grace, retry)"),
            ("[qeue]\n", "c.toml line 1: unknown section [qeue] (expected one of: queue, retention, types, model)"),
            ("verbose = true\n", "c.toml line 1: unknown key verbose (expected the sections queue, retention, types, model)"),
            ("[retention]\nperiod = \"1y\"\n", "c.toml line 2: retention.period: invalid duration unit \"y\" in \"1y\" (expected ms, s, m, h or d)"),
            ("[retention]\nsweep = \"yes\"\n", "c.toml line 2: retention.sweep must be true or false, not the string \"yes\""),
            ("[retention]\nsweep_interval = \"0s\"\n", "c.toml line 2: retention.sweep_interval must be longer than 0"),
            ("[types.detection]\ntimeout = 1.5\n", "c.toml line 2: types.detection.timeout must be a duration such as \"90s\" or \"30m\", not the number 1.5"),
            ("[types.detection]\npriority = 40000\n", "c.toml line 2: types.detection.priority is 40000, outside -32768..=32767"),
            ("[types.\"bad type\"]\n", "c.toml line 1: types.bad type: invalid job type \"bad type\": only letters, digits and . _ : - are allowed"),
            ("[types.detection.retry]\njitter = 2\n", "c.toml line 2: types.detection.retry.jitter is 2, outside 0..=1"),
            ("[types.detection]\nretry = { base_delay = \"1h\", max_delay = \"1m\" }\n", "c.toml line 2: types.detection.retry.base_delay (3600s) is longer than types.detection.retry.max_delay (60s)"),
            ("[model]\nchunk_size = 4000\n", "c.toml line 2: unknown key model.chunk_size (expected one of: inference, model, url, ollama_api, context, max_tokens, chunk_chars, temperature, concurrency, connect_timeout, read_timeout)"),
            ("[model]\ninference = \"llama\"\n", "c.toml line 2: model.inference must be \"offline\", \"ollama\" or \"openai\", not the string \"llama\""),
            ("[model]\ncontext = 100\n", "c.toml line 2: model.context is 100, outside 256..=100000000"),
            ("[model]\ntemperature = 3.5\n", "c.toml line 2: model.temperature is 3.5, outside 0..=2"),
            ("[model]\nconcurrency = \"2\"\n", "c.toml line 2: model.concurrency must be a whole number, not the string \"2\""),
            ("[model]\nread_timeout = \"0s\"\n", "c.toml line 2: model.read_timeout must be longer than 0"),
            ("[model]\nurl = \"\"\n", "c.toml line 2: model.url must be a non-empty string, not the string \"\""),
            ("[model]\napi_key = \"sk-secret\"\n", "c.toml line 2: model.api_key is not read from a file; set OPENAI_API_KEY in the environment"),
            ("types = 3\n", "c.toml line 1: types must be a table, not integer"),
        ];
        for (text, want) in table {
            assert_eq!(err(text), format!("config file {want}"), "{text:?}");
        }
        let syntax = err("[queue\nmax_retries = 1\n");
        assert!(
            syntax.starts_with("config file c.toml line 1: "),
            "{syntax}"
        );
        assert!(!syntax.contains('\n'), "{syntax}");
    }

    #[test]
    fn the_model_section_stands_for_the_inference_variables() {
        let f = FileConfig::parse(
            "[model]\ninference = \"ollama\"\nmodel = \"smollm2\"\nurl = \"http://127.0.0.1:9\"\n\
             context = 4096\nmax_tokens = 512\nchunk_chars = 3000\ntemperature = 0\n\
             concurrency = 2\nread_timeout = \"10m\"\nconnect_timeout = 3\nollama_api = \"generate\"\n",
            "c.toml",
        )
        .unwrap();
        let m = &f.model;
        for (var, want) in [
            ("SEMIONT_INFERENCE", "ollama"),
            ("SEMIONT_INFERENCE_MODEL", "smollm2"),
            ("OLLAMA_HOST", "http://127.0.0.1:9"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9"),
            ("SEMIONT_OLLAMA_API", "generate"),
            ("SEMIONT_INFERENCE_CONTEXT", "4096"),
            ("SEMIONT_INFERENCE_MAX_TOKENS", "512"),
            ("SEMIONT_INFERENCE_CHUNK_CHARS", "3000"),
            ("SEMIONT_INFERENCE_TEMPERATURE", "0"),
            ("SEMIONT_INFERENCE_CONCURRENCY", "2"),
            ("SEMIONT_INFERENCE_READ_TIMEOUT_SECS", "600"),
            ("SEMIONT_INFERENCE_CONNECT_TIMEOUT_SECS", "3"),
        ] {
            assert_eq!(m.lookup(var), Some(want), "{var}");
        }
        assert_eq!(m.lookup("OPENAI_API_KEY"), None);
        assert!(FileConfig::default().model.is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "h", "1y", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn load_refuses_missing_and_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = FileConfig::load(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with("config file ") && e.contains("nope.toml: cannot read it"),
            "{e}"
        );
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
        let e = FileConfig::load(&big).unwrap_err().to_string();
        assert!(e.contains("more than the limit"), "{e}");
        let e = FileConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
