//! [`ServerConfig`]: where the server listens, who may call it, and the
//! limits that keep one client from hurting the others.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{Error, Result, Tokens};

/// The server's settings. `Default` is safe: loopback only, no tokens (so
/// every local caller is admin), CORS off.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:8080`). A non-loopback
    /// address needs at least one token.
    pub listen: SocketAddr,
    /// Prefix of every route, e.g. `/jobs` (default: none). Starts with `/`,
    /// no trailing `/`.
    pub base_path: String,
    /// Bearer tokens and their roles; empty means no authentication.
    pub tokens: Tokens,
    /// Origins allowed to call the API from a browser on another origin
    /// (CORS); empty turns CORS off.
    pub cors_origins: Vec<String>,
    /// Largest accepted request body, in bytes (default 2 MiB: a job's
    /// parameters may be 1 MiB).
    pub body_limit: usize,
    /// Longest time a request may take, body included (default 30 s); event
    /// streams are exempt.
    pub request_timeout: Duration,
    /// Longest time a client may take to send its request headers (default
    /// 10 s; slow-header clients are disconnected).
    pub header_timeout: Duration,
    /// Interval of keep-alive comments on event streams (default 15 s).
    pub keep_alive: Duration,
    /// Events kept for `Last-Event-ID` replay (default 4096).
    pub replay_events: usize,
    /// Bytes of events kept for replay (default 16 MiB).
    pub replay_bytes: usize,
    /// Events an event-stream client may fall behind before it is sent a
    /// `resync` (default 1024).
    pub client_buffer: usize,
    /// Connections served at once; more are closed at accept (default 4096).
    pub max_connections: usize,
    /// `Idempotency-Key`s remembered (default 10 000; the oldest is
    /// forgotten first).
    pub idempotency_keys: usize,
    /// How long an `Idempotency-Key` is remembered (default 24 h).
    pub idempotency_ttl: Duration,
    /// How long shutdown waits for in-flight requests (default 30 s).
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            base_path: String::new(),
            tokens: Tokens::none(),
            cors_origins: Vec::new(),
            body_limit: 2 << 20,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(15),
            replay_events: 4096,
            replay_bytes: 16 << 20,
            client_buffer: 1024,
            max_connections: 4096,
            idempotency_keys: 10_000,
            idempotency_ttl: Duration::from_secs(24 * 60 * 60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl ServerConfig {
    /// Sets the listening address.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Sets the route prefix (`""` or `/x`, `/x/y`).
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = path.into();
        self
    }

    /// Sets the tokens.
    pub fn tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = tokens;
        self
    }

    /// Allows a browser origin (CORS).
    pub fn cors_origin(mut self, origin: impl Into<String>) -> Self {
        self.cors_origins.push(origin.into());
        self
    }

    /// Sets the keep-alive interval of event streams.
    pub fn keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }

    /// Sets the replay buffer (events and bytes).
    pub fn replay(mut self, events: usize, bytes: usize) -> Self {
        self.replay_events = events;
        self.replay_bytes = bytes;
        self
    }

    /// Sets how far an event-stream client may fall behind.
    pub fn client_buffer(mut self, events: usize) -> Self {
        self.client_buffer = events;
        self
    }

    /// Sets the request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the header timeout.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Sets the body limit.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        validate_base_path(&self.base_path)?;
        for origin in &self.cors_origins {
            validate_origin(origin)?;
        }
        let positive = [
            ("body limit", self.body_limit),
            ("replay events", self.replay_events),
            ("replay bytes", self.replay_bytes),
            ("client buffer", self.client_buffer),
            ("max connections", self.max_connections),
            ("idempotency keys", self.idempotency_keys),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        let durations = [
            ("request timeout", self.request_timeout),
            ("header timeout", self.header_timeout),
            ("keep-alive interval", self.keep_alive),
        ];
        for (name, value) in durations {
            if value.is_zero() {
                return Err(Error::Config(format!("{name} must be more than zero")));
            }
        }
        Ok(())
    }

    /// Refuses to expose the queue beyond this machine without a token.
    pub fn check_exposure(&self) -> Result<()> {
        if !self.listen.ip().is_loopback() && self.tokens.is_empty() {
            return Err(Error::Config(format!(
                "refusing to listen on {} without a token: give a token file (--token-file) or \
                 SEMIONT_JOBS_TOKENS, or listen on a loopback address such as 127.0.0.1",
                self.listen
            )));
        }
        Ok(())
    }
}

fn validate_base_path(path: &str) -> Result<()> {
    if path.is_empty() {
        return Ok(());
    }
    let bad = |why: &str| Err(Error::Config(format!("base path {path:?} {why}")));
    if !path.starts_with('/') {
        return bad("must start with /");
    }
    if path.ends_with('/') {
        return bad("must not end with / (use \"\" for the root)");
    }
    if path.len() > 200 {
        return bad("is longer than 200 bytes");
    }
    if path
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("has an empty, . or .. segment");
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'))
    {
        return bad("may only use letters, digits and / - _ . ~");
    }
    Ok(())
}

fn validate_origin(origin: &str) -> Result<()> {
    let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
        && !origin.ends_with('/')
        && origin.len() <= 200
        && origin
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'*' | b',' | b'"'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "CORS origin {origin:?} must look like https://host[:port] (no path, no wildcard)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths() {
        for ok in ["", "/jobs", "/a/b-c_d.e~f"] {
            assert!(validate_base_path(ok).is_ok(), "{ok}");
        }
        for bad in ["jobs", "/jobs/", "/", "/a//b", "/a/../b", "/a b", "/a?x"] {
            let e = validate_base_path(bad).unwrap_err();
            assert!(e.to_string().contains("base path"), "{bad}: {e}");
        }
    }

    #[test]
    fn origins() {
        assert!(validate_origin("https://ops.example.com").is_ok());
        assert!(validate_origin("http://127.0.0.1:3000").is_ok());
        for bad in ["*", "ops.example.com", "https://x/", "https://a,https://b"] {
            assert!(validate_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exposure_needs_a_token_off_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let e = ServerConfig::default()
            .listen(any)
            .check_exposure()
            .unwrap_err();
        assert!(
            e.to_string().contains("refusing to listen on 0.0.0.0:8080"),
            "{e}"
        );
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert!(ServerConfig::default().listen(v6).check_exposure().is_ok());
        let tokens = Tokens::parse("admin:0123456789abcdef0123", "test").unwrap();
        assert!(ServerConfig::default()
            .listen(any)
            .tokens(tokens)
            .check_exposure()
            .is_ok());
    }

    #[test]
    fn zero_limits_are_refused() {
        let c = ServerConfig::default().client_buffer(0);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("client buffer"));
        let c = ServerConfig::default().keep_alive(Duration::ZERO);
        assert!(c.validate().unwrap_err().to_string().contains("keep-alive"));
    }
}
