//! The [`Component`] trait and what a component receives when it starts.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::health::HealthHandle;

/// The error type components return from `start`/`stop`: each component keeps its own typed error and
/// the supervisor only needs to display it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A long-lived part of the daemon with an explicit lifecycle.
///
/// `start` must return once the component is ready to serve (sockets bound, state loaded), leaving its
/// background work in tasks spawned on the context's tracker. Those tasks must end when the context's
/// shutdown token is cancelled. `stop` is for work beyond that (flushing, closing files); the supervisor
/// cancels the token first, then calls `stop`, then waits for the tracked tasks, all within the deadline.
#[async_trait]
pub trait Component: Send {
    /// A short, stable name used in logs, errors and health reports (e.g. `api`, `dogstatsd`).
    fn name(&self) -> &str;

    /// Starts the component. An error aborts the daemon's start.
    async fn start(&mut self, ctx: StartContext) -> Result<(), BoxError>;

    /// Finishes the component's work after its shutdown token was cancelled. The default does nothing:
    /// most components only need their tasks to observe the token.
    async fn stop(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// How often the component promises to check in on its health handle. `None` (the default) means
    /// the component only reports state changes and is never considered stale.
    fn health_interval(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Lets any component (or the API's `stop` route) ask the whole daemon to stop gracefully.
#[derive(Clone, Debug, Default)]
pub struct StopRequest {
    token: CancellationToken,
    reason: Arc<std::sync::Mutex<Option<String>>>,
}

impl StopRequest {
    /// Creates a request that nobody has made yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the daemon to stop; the first reason given is kept.
    pub fn request(&self, reason: impl Into<String>) {
        if let Ok(mut slot) = self.reason.lock() {
            slot.get_or_insert_with(|| reason.into());
        }
        self.token.cancel();
    }

    /// Resolves once a stop has been requested.
    pub async fn requested(&self) {
        self.token.cancelled().await;
    }

    /// Whether a stop has been requested.
    pub fn is_requested(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The reason given by the first request, if any.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|slot| slot.clone())
    }
}

/// What a component receives when it starts.
#[derive(Clone, Debug)]
pub struct StartContext {
    shutdown: CancellationToken,
    tasks: TaskTracker,
    health: HealthHandle,
    stop_request: StopRequest,
}

impl StartContext {
    pub(crate) fn new(
        shutdown: CancellationToken,
        tasks: TaskTracker,
        health: HealthHandle,
        stop_request: StopRequest,
    ) -> Self {
        Self {
            shutdown,
            tasks,
            health,
            stop_request,
        }
    }

    /// Cancelled when this component must stop. Clone it into every task the component spawns.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The tracker the supervisor waits on when stopping this component.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Spawns a task tracked by this component's tracker.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// This component's health handle.
    pub fn health(&self) -> &HealthHandle {
        &self.health
    }

    /// Asks the whole daemon to stop (e.g. after an unrecoverable runtime error).
    pub fn stop_request(&self) -> &StopRequest {
        &self.stop_request
    }
}
