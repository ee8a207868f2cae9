//! Where the worker engines send their progress reports.

use async_trait::async_trait;

/// Receives progress reports of a running engine (detection, generation).
///
/// Implemented for every `FnMut(P) + Send` closure, so a test can pass
/// `&mut |p| seen.push(p)`; a job runtime implements it on an adapter whose
/// `report` awaits its own progress update (throttling as it likes: the
/// engines report at most a few times per step).
#[async_trait]
pub trait ProgressSink<P: Send + 'static>: Send {
    /// Takes one report. Reports arrive in order; the last one wins.
    async fn report(&mut self, progress: P);
}

#[async_trait]
impl<P, F> ProgressSink<P> for F
where
    P: Send + 'static,
    F: FnMut(P) + Send,
{
    async fn report(&mut self, progress: P) {
        self(progress)
    }
}
