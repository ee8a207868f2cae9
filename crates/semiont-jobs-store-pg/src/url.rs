//! Database URLs: parsing into a client configuration, and a `Display` that
//! never shows the password.

use std::fmt;
use std::str::FromStr;

use crate::connect::Verify;
use crate::OpenError;

/// A PostgreSQL connection string, as a URL (`postgres://user:pass@host:5432/db?sslmode=prefer`)
/// or as `key=value` pairs (`host=... dbname=...`).
///
/// Its `Display` and `Debug` replace the password with `***` wherever it
/// appears (the URL's user info, a `password=` pair, a `password` query
/// parameter), so a URL can be logged and put in error messages.
#[derive(Clone)]
pub struct DatabaseUrl {
    raw: String,
    config: tokio_postgres::Config,
    verify: Verify,
}

impl DatabaseUrl {
    /// Parses and checks a connection string. Defaults as libpq's: the user
    /// is `$PGUSER`, else `$USER`, else `postgres`; the database is named
    /// after the user.
    pub fn parse(s: &str) -> Result<Self, OpenError> {
        let shown = redact(s);
        let invalid = |reason: String| OpenError::InvalidUrl {
            url: shown.clone(),
            reason,
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let looks_like_url = s.contains("://");
        if looks_like_url && !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            let scheme = s.split("://").next().unwrap_or_default();
            return Err(invalid(format!(
                "unknown scheme {scheme:?} (expected postgres:// or postgresql://)"
            )));
        }
        if !looks_like_url && !s.contains('=') {
            return Err(invalid(
                "expected postgres://user@host/db or key=value pairs".into(),
            ));
        }
        let (client_form, verify) = take_tls_options(s, looks_like_url);
        let mut config = tokio_postgres::Config::from_str(&client_form)
            .map_err(|e| invalid(clean_parse_error(&e)))?;
        if config.get_hosts().is_empty() {
            return Err(invalid("it names no host".into()));
        }
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "postgres".into());
            config.user(&user);
        }
        if config.get_dbname().is_none() {
            let user = config.get_user().unwrap_or("postgres").to_owned();
            config.dbname(&user);
        }
        Ok(DatabaseUrl {
            raw: s.to_owned(),
            config,
            verify,
        })
    }

    /// How the server's certificate is checked.
    pub(crate) fn verify(&self) -> &Verify {
        &self.verify
    }

    /// The client configuration.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The connection string with the password (if any) as `***`.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    /// The connection string as given, password included. Only for handing
    /// to another process (never print it).
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The database name.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// The user name.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// The first host and its port (5432 when none is given).
    pub fn host_port(&self) -> (String, u16) {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        (
            host,
            self.config.get_ports().first().copied().unwrap_or(5432),
        )
    }

    /// The password, if the string has one (never print it).
    pub fn password(&self) -> Option<&str> {
        self.config
            .get_password()
            .and_then(|p| std::str::from_utf8(p).ok())
    }
}

impl FromStr for DatabaseUrl {
    type Err = OpenError;
    fn from_str(s: &str) -> Result<Self, OpenError> {
        DatabaseUrl::parse(s)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// Takes the TLS options the client does not know out of a connection
/// string: `sslmode=verify-ca` / `verify-full` (passed on as `require`,
/// with the certificate checked here) and `sslrootcert=PATH`.
fn take_tls_options(s: &str, url: bool) -> (String, Verify) {
    let mut full = false;
    let mut roots = None;
    let mut keep = |key: &str, value: &str| -> Option<String> {
        if key.eq_ignore_ascii_case("sslmode") && value.starts_with("verify-") {
            full = true;
            return Some("require".into());
        }
        if key.eq_ignore_ascii_case("sslrootcert") {
            roots = Some(std::path::PathBuf::from(value));
            return None;
        }
        Some(value.to_owned())
    };
    let rewritten = if url {
        match s.split_once('?') {
            Some((base, query)) => {
                let params: Vec<String> = query
                    .split('&')
                    .filter_map(|kv| match kv.split_once('=') {
                        Some((k, v)) => keep(k, v).map(|v| format!("{k}={v}")),
                        None => Some(kv.to_owned()),
                    })
                    .collect();
                if params.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", params.join("&"))
                }
            }
            None => s.to_owned(),
        }
    } else {
        s.split_whitespace()
            .filter_map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                    keep(k, v).map(|v| format!("{k}={v}"))
                }
                _ => Some(kv.to_owned()),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let verify = if full || roots.is_some() {
        Verify::Full(roots)
    } else {
        Verify::Encrypt
    };
    (rewritten, verify)
}

/// The client's parse errors name the problem, never a value; keep them on
/// one lowercase line.
fn clean_parse_error(e: &tokio_postgres::Error) -> String {
    let text = e.to_string();
    let text = text
        .strip_prefix("invalid configuration: ")
        .unwrap_or(&text);
    text.replace('\n', " ")
}

/// `s` with every password replaced by `***`: a URL's user info, a
/// `password=` pair of a key/value string, a `password` query parameter.
pub fn redact(s: &str) -> String {
    let s = s.trim();
    if let Some(scheme_end) = s.find("://") {
        let (scheme, rest) = s.split_at(scheme_end + 3);
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rfind('@') {
            Some(at) => {
                let (userinfo, hosts) = authority.split_at(at);
                match userinfo.find(':') {
                    Some(colon) => format!("{}:***{hosts}", &userinfo[..colon]),
                    None => authority.to_owned(),
                }
            }
            None => authority.to_owned(),
        };
        let tail = match tail.find('?') {
            Some(q) => {
                let (path, query) = tail.split_at(q + 1);
                let query: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                        _ => kv.to_owned(),
                    })
                    .collect();
                format!("{path}{}", query.join("&"))
            }
            None => tail.to_owned(),
        };
        return format!("{scheme}{authority}{tail}");
    }
    if !s.contains('=') {
        // Neither a URL nor key=value pairs (a typo like `postgres//u:p@h`):
        // hide whatever stands between a ':' and the last '@'.
        if let Some(at) = s.rfind('@') {
            let start = s[..at].rfind('/').map_or(0, |i| i + 1);
            if let Some(colon) = s[start..at].find(':') {
                return format!("{}***{}", &s[..start + colon + 1], &s[at..]);
            }
        }
        return s.to_owned();
    }
    // key=value pairs: values may be 'quoted' with \' escapes.
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = find_password_key(rest) {
        let (before, after) = rest.split_at(pos);
        out.push_str(before);
        let eq = after.find('=').map(|i| i + 1).unwrap_or(after.len());
        out.push_str(&after[..eq]);
        out.push_str("***");
        let value = after[eq..].trim_start();
        let skip = if let Some(quoted) = value.strip_prefix('\'') {
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '\'' {
                    end = i + 1;
                    break;
                }
            }
            1 + end
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        rest = &value[skip.min(value.len())..];
    }
    out.push_str(rest);
    out
}

/// Where a `password` key starts in a key/value string (at the start or
/// after whitespace, followed by optional spaces and `=`).
fn find_password_key(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password") {
        let at = from + i;
        let starts_word = at == 0 || lower[..at].ends_with(char::is_whitespace);
        let follows = lower[at + "password".len()..].trim_start();
        if starts_word && follows.starts_with('=') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_hide_their_passwords() {
        for (given, shown) in [
            (
                "postgres://ada:s3cret@db.example:5432/jobs",
                "postgres://ada:***@db.example:5432/jobs",
            ),
            (
                "postgresql://ada:p%40ss@h/db?sslmode=require&password=x2",
                "postgresql://ada:***@h/db?sslmode=require&password=***",
            ),
            ("postgres://ada@h/db", "postgres://ada@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            ("postgres//ada:s3cret@h/db", "postgres//ada:***@h/db"),
            (
                "host=h user=ada password=s3cret dbname=jobs",
                "host=h user=ada password=*** dbname=jobs",
            ),
            (
                "host=h password = 'with space\\' quote' dbname=jobs",
                "host=h password =*** dbname=jobs",
            ),
        ] {
            assert_eq!(redact(given), shown, "{given}");
        }
    }

    #[test]
    fn parse_errors_never_show_the_password() {
        for bad in [
            "postgress://ada:s3cret@h/db",
            "postgres://ada:s3cret@h:notaport/db",
            "postgres://ada:s3cret@/db",
            "just words",
            "",
        ] {
            let err = DatabaseUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("s3cret"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let ok = DatabaseUrl::parse("postgres://ada:s3cret@h:5433/db").unwrap();
        assert_eq!(ok.to_string(), "postgres://ada:***@h:5433/db");
        assert!(!format!("{ok:?}").contains("s3cret"));
        assert_eq!((ok.user(), ok.dbname()), ("ada", "db"));
    }
}
