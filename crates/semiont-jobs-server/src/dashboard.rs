//! The web dashboard: static HTML, CSS and JavaScript modules embedded in
//! the binary (`dashboard/` next to `src/`, no build step), served at the
//! base path's root and under `assets/`, with a `Content-Security-Policy`
//! of `default-src 'self'` (the pages have no inline script or style).
//! Everything the pages show comes from the JSON API and its event stream,
//! with the token the user enters; the pages themselves need no token.

use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{AppState, Error};

/// The `Content-Security-Policy` of every dashboard response.
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'";

const INDEX: &str = include_str!("../dashboard/index.html");

/// The files under `assets/`: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../dashboard/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../dashboard/favicon.svg"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../dashboard/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../dashboard/api.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../dashboard/live.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../dashboard/ui.js"),
    ),
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../dashboard/overview.js"),
    ),
    (
        "jobs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../dashboard/jobs.js"),
    ),
    (
        "job.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../dashboard/job.js"),
    ),
    (
        "workers.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../dashboard/workers.js"),
    ),
];

/// Minimal HTML escaping for attribute values.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn with_headers(mut response: Response, content_type: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    // Embedded files change only with the binary; revalidating is cheap.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The page: `index.html` with the base path (assets and API calls are
/// below it) and whether the API wants a token.
pub(crate) async fn index(State(state): State<AppState>) -> Response {
    let config = state.config();
    let auth = if config.tokens.is_empty() {
        "none"
    } else {
        "required"
    };
    let page = INDEX
        .replace("{{BASE}}", &escape(&config.base_path))
        .replace("{{AUTH}}", auth);
    with_headers(page.into_response(), "text/html; charset=utf-8")
}

/// `assets/{file}`: one of the embedded files.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => {
            with_headers((StatusCode::OK, *bytes).into_response(), content_type)
        }
        None => {
            let name: String = file.chars().take(100).collect();
            Error::not_found(format!("no dashboard file {name}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module the pages import is served, and nothing in them needs
    /// an inline script or style (which the CSP would block).
    #[test]
    fn every_imported_module_is_embedded_and_nothing_is_inline() {
        let names: Vec<&str> = ASSETS.iter().map(|(n, _, _)| *n).collect();
        for (name, _, bytes) in ASSETS {
            let text = std::str::from_utf8(bytes).unwrap();
            for line in text.lines() {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("import ") {
                    let from = rest.rsplit("from '").next().unwrap();
                    let module = from.trim_end_matches("';").trim_start_matches("./");
                    assert!(names.contains(&module), "{name} imports {module}");
                }
            }
            assert!(!text.contains("innerHTML"), "{name} uses innerHTML");
            assert!(!text.contains("eval("), "{name} uses eval");
        }
        assert!(!INDEX.contains("<script>"), "inline script in index.html");
        assert!(!INDEX.contains("<style"), "inline style in index.html");
        assert!(!INDEX.contains("style="), "inline style in index.html");
        // No inline event handler attribute (` onclick=` and the like).
        let handler = INDEX.match_indices(" on").any(|(i, _)| {
            let rest = &INDEX[i + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!handler, "inline event handler in index.html");
    }
}
