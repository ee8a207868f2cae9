//! `serve`: the HTTP API, event streams and Prometheus metrics over the data
//! directory's queue, until SIGINT/SIGTERM (then a graceful shutdown:
//! streams end, in-flight requests finish).

use std::path::Path;

use semiont_jobs::server::{AppState, Server, ServerConfig, Tokens};
use serde_json::json;

use crate::app::{App, Create};
use crate::args::{Cli, ServeArgs};
use crate::{output, UsageError};

/// Tokens come from this variable when no `--token-file` is given.
pub const TOKENS_ENV: &str = "SEMIONT_JOBS_TOKENS";

/// Runs the server.
pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let usage = |e: semiont_jobs::server::Error| UsageError(e.to_string());
    let tokens = tokens(args.token_file.as_deref()).map_err(usage)?;
    let mut config = ServerConfig::default()
        .listen(args.listen)
        .base_path(args.base_path.clone())
        .tokens(tokens);
    for origin in &args.cors_origin {
        config = config.cors_origin(origin.clone());
    }
    config.validate().map_err(usage)?;
    config.check_exposure().map_err(usage)?;
    let app = App::open(cli, Create::Yes).await?;
    let server = Server::bind(AppState::new(app.queue.clone(), config)?).await?;
    let url = format!("http://{}{}", server.local_addr(), args.base_path);
    if cli.json {
        output::json_line(&json!({ "event": "server.listening", "url": url }))?;
    } else {
        output::line(format!("listening on {url}"));
    }
    tracing::info!(event = "server.listening", url = %url, "serving the queue over HTTP");
    server.run(stop_signal()).await?;
    app.queue.close().await?;
    Ok(())
}

/// The tokens: from `--token-file`, else from `SEMIONT_JOBS_TOKENS`, else
/// none (loopback only).
fn tokens(file: Option<&Path>) -> semiont_jobs::server::Result<Tokens> {
    if let Some(path) = file {
        return Tokens::from_file(path);
    }
    match std::env::var(TOKENS_ENV) {
        Ok(text) if !text.trim().is_empty() => Tokens::parse(&text, TOKENS_ENV),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(Tokens::none()),
        Err(std::env::VarError::NotUnicode(_)) => Err(semiont_jobs::server::Error::Tokens {
            origin: TOKENS_ENV.into(),
            reason: "not valid UTF-8".into(),
        }),
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!(
        event = "server.stopping",
        "stopping: ending event streams, finishing requests"
    );
}
