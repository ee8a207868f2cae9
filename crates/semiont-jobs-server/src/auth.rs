//! Bearer tokens and roles: [`Tokens`] (parsed from a file or an environment
//! variable, compared in constant time, never printed), and the extractors
//! handlers name to say which role they need ([`ReadAccess`],
//! [`WriteAccess`], [`AdminAccess`]).

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::{AppState, Error, ErrorKind, Result};

/// Shortest accepted token, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest accepted token, in bytes.
pub const MAX_TOKEN_LEN: usize = 512;
/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 1 << 20;

/// What a caller may do. Each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read jobs, statistics, events and metrics.
    Read,
    /// Also create, cancel and retry jobs (one or in bulk).
    Write,
    /// Also delete jobs (one or in bulk).
    Admin,
}

impl Role {
    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Entry {
    digest: u64,
    token: Box<[u8]>,
    role: Role,
}

/// The accepted bearer tokens and their roles.
///
/// Text format (file or environment variable): entries `role:token`
/// separated by newlines or commas; blank lines and lines starting with `#`
/// are ignored. Roles are `read`, `write`, `admin`; a token is 16 to 512
/// visible ASCII characters other than `,`. `Debug` shows only how many
/// tokens there are.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Arc<[Entry]>,
    hasher: RandomState,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

impl Tokens {
    /// No tokens: authentication is off (every caller is admin), which is
    /// allowed on loopback addresses only.
    pub fn none() -> Self {
        Tokens::default()
    }

    /// Parses tokens from `text`; `origin` names where it came from in
    /// errors (a path, a variable name). Errors never quote a token.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let bad = |reason: String| Error::Tokens {
            origin: origin.to_owned(),
            reason,
        };
        let hasher = RandomState::new();
        let mut entries: Vec<Entry> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for item in line.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let at = format!("line {}", n + 1);
                let Some((role, token)) = item.split_once(':') else {
                    return Err(bad(format!("{at}: expected role:token")));
                };
                let role = Role::parse(role.trim()).ok_or_else(|| {
                    bad(format!(
                        "{at}: unknown role {:?} (expected read, write or admin)",
                        role.trim().chars().take(20).collect::<String>()
                    ))
                })?;
                let token = token.trim().as_bytes();
                if token.len() < MIN_TOKEN_LEN || token.len() > MAX_TOKEN_LEN {
                    return Err(bad(format!(
                        "{at}: a token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters long"
                    )));
                }
                if !token.iter().all(|b| b.is_ascii_graphic()) {
                    return Err(bad(format!(
                        "{at}: a token may only use visible ASCII characters"
                    )));
                }
                if entries.iter().any(|e| &*e.token == token) {
                    return Err(bad(format!("{at}: the same token is listed twice")));
                }
                entries.push(Entry {
                    digest: hasher.hash_one(token),
                    token: token.into(),
                    role,
                });
            }
        }
        if entries.is_empty() {
            return Err(bad("no tokens (expected lines like admin:<token>)".into()));
        }
        Ok(Tokens {
            entries: entries.into(),
            hasher,
        })
    }

    /// Reads tokens from a file, which must not be readable by other users.
    pub fn from_file(path: &Path) -> Result<Self> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let origin = path.display().to_string();
        let bad = |reason: String| Error::Tokens {
            origin: origin.clone(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| bad(format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "readable by other users (mode {mode:04o}); run chmod 600 on it"
            )));
        }
        let mut text = String::new();
        file.take(MAX_TOKEN_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| bad(format!("cannot read: {e}")))?;
        if text.len() as u64 > MAX_TOKEN_FILE {
            return Err(bad("larger than 1 MiB".into()));
        }
        Tokens::parse(&text, &origin)
    }

    /// Whether no token is configured (authentication off).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The role of `presented` and the position of its entry, if it is one
    /// of the tokens. Every entry is looked at (no early exit); the bytes are
    /// compared in constant time after a keyed digest (whose comparison is
    /// also constant time) matched, so timing reveals neither the tokens'
    /// contents nor their lengths.
    pub(crate) fn check(&self, presented: &[u8]) -> Option<(usize, Role)> {
        let digest = self.hasher.hash_one(presented).to_le_bytes();
        let mut found = None;
        for (i, entry) in self.entries.iter().enumerate() {
            let same_digest: bool = digest.ct_eq(&entry.digest.to_le_bytes()).into();
            if same_digest && bool::from(presented.ct_eq(&entry.token)) {
                found = Some((i, entry.role));
            }
        }
        found
    }
}

/// Who is calling: the role, and which token (by position) when
/// authentication is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// What the caller may do.
    pub role: Role,
    /// Position of the caller's token in the token list (`None`: no
    /// authentication configured). Scopes idempotency keys.
    pub token: Option<usize>,
}

/// Where the auth extractor leaves the caller's role for the access log.
#[derive(Clone, Default)]
pub(crate) struct RoleSlot(pub Arc<OnceLock<Role>>);

fn bearer(parts: &Parts) -> Result<&[u8]> {
    let unauthorized = |d: &str| Error::new(ErrorKind::Unauthorized, d);
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(unauthorized(
            "missing bearer token (send Authorization: Bearer <token>)",
        ));
    };
    if values.next().is_some() {
        return Err(unauthorized("more than one Authorization header"));
    }
    let bytes = value.as_bytes();
    let Some(space) = bytes.iter().position(|b| *b == b' ') else {
        return Err(unauthorized(
            "the Authorization header must be Bearer <token>",
        ));
    };
    let (scheme, rest) = bytes.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(unauthorized("the authorization scheme must be Bearer"));
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(unauthorized("empty bearer token"));
    }
    Ok(token)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let tokens = &state.config().tokens;
        let caller = if tokens.is_empty() {
            Caller {
                role: Role::Admin,
                token: None,
            }
        } else {
            let (index, role) = tokens
                .check(bearer(parts)?)
                .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "unknown bearer token"))?;
            Caller {
                role,
                token: Some(index),
            }
        };
        if let Some(slot) = parts.extensions.get::<RoleSlot>() {
            let _ = slot.0.set(caller.role);
        }
        Ok(caller)
    }
}

macro_rules! access {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = Error;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
                let caller = Caller::from_request_parts(parts, state).await?;
                if caller.role < $role {
                    return Err(Error::new(
                        ErrorKind::Forbidden,
                        format!(
                            "this operation needs the {} role; the token has {}",
                            $role, caller.role
                        ),
                    ));
                }
                Ok($name(caller))
            }
        }
    };
}

access!(
    /// A caller with at least the `read` role.
    ReadAccess,
    Role::Read
);
access!(
    /// A caller with at least the `write` role.
    WriteAccess,
    Role::Write
);
access!(
    /// A caller with the `admin` role.
    AdminAccess,
    Role::Admin
);

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "admin-token-0123456789";
    const R: &str = "read-token-0123456789";

    #[test]
    fn parses_lines_and_commas_and_checks_tokens() {
        let text = format!("# ops\nadmin:{A}\n\nread:{R}, write:write-token-0123456789\n");
        let t = Tokens::parse(&text, "f").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.check(A.as_bytes()), Some((0, Role::Admin)));
        assert_eq!(t.check(R.as_bytes()), Some((1, Role::Read)));
        assert_eq!(t.check(b"write-token-0123456789"), Some((2, Role::Write)));
        assert_eq!(t.check(b"admin-token-012345678"), None);
        assert_eq!(t.check(b""), None);
        assert_eq!(format!("{t:?}"), "Tokens(3 configured)");
    }

    #[test]
    fn bad_token_text_is_refused_without_quoting_tokens() {
        let cases = [
            ("", "no tokens"),
            ("admin", "expected role:token"),
            ("root:0123456789abcdef", "unknown role \"root\""),
            ("admin:short", "16 to 512"),
            ("admin:0123456789abcdef\u{e9}", "visible ASCII"),
            (
                "admin:0123456789abcdef\nread:0123456789abcdef",
                "listed twice",
            ),
        ];
        for (text, want) in cases {
            let e = Tokens::parse(text, "SEMIONT_JOBS_TOKENS").unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(want), "{text:?}: {msg}");
            assert!(
                msg.starts_with("invalid tokens in SEMIONT_JOBS_TOKENS"),
                "{msg}"
            );
            assert!(!msg.contains("0123456789abcdef"), "{msg}");
        }
    }

    #[test]
    fn token_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, format!("admin:{A}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Tokens::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Tokens::from_file(&path).unwrap().len(), 1);
        let e = Tokens::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("cannot open"), "{e}");
    }
}
