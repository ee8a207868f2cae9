//! The connection loop: binds the configured address (refusing to expose
//! the queue without a token), serves HTTP/1.1 connections with a header
//! timeout and a connection limit, and shuts down gracefully — stop
//! accepting, end event streams, let in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::{router, AppState, Error, Result};

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    addr: SocketAddr,
}

impl Server {
    /// Checks the configuration and binds its address (`port 0` picks a
    /// free port; see [`Server::local_addr`]).
    pub async fn bind(state: AppState) -> Result<Server> {
        let config = state.config();
        config.validate()?;
        config.check_exposure()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        Ok(Server {
            listener,
            state,
            addr,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (e.g. to call [`AppState::shutdown`]).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes or [`AppState::shutdown`] is called,
    /// then shuts down gracefully: no new connections, event streams end,
    /// in-flight requests finish (for at most the configured grace period).
    pub async fn run(self, signal: impl Future<Output = ()> + Send) -> Result<()> {
        let Server {
            listener, state, ..
        } = self;
        let app = router(state.clone());
        let config = state.config().clone();
        let shutdown = state.shutdown_token().clone();
        let slots = Arc::new(Semaphore::new(config.max_connections));
        // Every connection task holds a receiver; all dropped = all done.
        let (done_tx, done_rx) = watch::channel(());
        tokio::pin!(signal);
        loop {
            let accepted = tokio::select! {
                () = &mut signal => break,
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(peer = %peer, limit = config.max_connections, "connection limit reached; closing the new connection");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(
                stream,
                peer,
                app.clone(),
                config.header_timeout,
                shutdown.clone(),
                (permit, done_rx.clone()),
            ));
        }
        drop(listener);
        drop(done_rx);
        tracing::info!("shutting down: no new connections; ending event streams");
        state.shutdown();
        if tokio::time::timeout(config.shutdown_grace, done_tx.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_s = config.shutdown_grace.as_secs(),
                "in-flight requests did not finish within the grace period"
            );
        }
        tracing::info!("server stopped");
        Ok(())
    }
}

async fn serve_connection<T>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    header_timeout: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
    _held: T,
) {
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            return;
        }
        () = shutdown.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}
