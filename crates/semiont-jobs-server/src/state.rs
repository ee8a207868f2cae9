//! [`AppState`]: what every handler shares, behind one `Arc` — the queue,
//! the configuration, the event hub, the metrics, the last hour's history,
//! the idempotency keys and the shutdown signal.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use semiont_jobs_queue::JobQueue;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::history::{self, History};
use crate::hub::{self, Hub};
use crate::idempotency::Idempotency;
use crate::metrics::Metrics;
use crate::{Result, ServerConfig};

/// The shared state of the server. Cheap to clone.
///
/// Creating it starts the event hub (a task reading the queue's events), so
/// it must be created inside a Tokio runtime; the hub stops when the last
/// clone is dropped or at [`AppState::shutdown`].
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    queue: JobQueue,
    config: ServerConfig,
    hub: Hub,
    metrics: Arc<Metrics>,
    history: Arc<History>,
    idempotency: Idempotency,
    shutdown: CancellationToken,
    _stop_hub: DropGuard,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("queue", &self.inner.queue)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The first event id: the start time in microseconds, so ids from an
/// earlier run of the server are older than anything in the replay buffer
/// (a client reconnecting across a restart gets a `resync`, never someone
/// else's events).
fn first_event_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(1))
}

impl AppState {
    /// The state for serving `queue` with `config` (validated here).
    pub fn new(queue: JobQueue, config: ServerConfig) -> Result<Self> {
        config.validate()?;
        let hub = Hub::new(
            first_event_id(),
            config.replay_events,
            config.replay_bytes,
            config.client_buffer,
        );
        let metrics = Arc::new(Metrics::default());
        let history = Arc::new(History::new(queue.now()));
        let stop_hub = CancellationToken::new();
        tokio::spawn(hub::run(
            hub.clone(),
            queue.subscribe(),
            Arc::clone(&metrics),
            Arc::clone(&history),
            stop_hub.clone(),
        ));
        tokio::spawn(history::sample(
            queue.clone(),
            Arc::clone(&history),
            stop_hub.clone(),
        ));
        Ok(AppState {
            inner: Arc::new(Inner {
                idempotency: Idempotency::new(config.idempotency_keys, config.idempotency_ttl),
                queue,
                config,
                hub,
                metrics,
                history,
                shutdown: CancellationToken::new(),
                _stop_hub: stop_hub.drop_guard(),
            }),
        })
    }

    /// The queue served.
    pub fn queue(&self) -> &JobQueue {
        &self.inner.queue
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Starts a graceful shutdown: event streams end, connections close
    /// once their in-flight request is answered, no new ones are accepted.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Fires when [`AppState::shutdown`] was called.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn history(&self) -> &History {
        &self.inner.history
    }

    pub(crate) fn idempotency(&self) -> &Idempotency {
        &self.inner.idempotency
    }
}
