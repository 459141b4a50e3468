//! Ordered start, reverse-order stop with a per-component deadline.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::component::{BoxError, Component, StartContext, StopRequest};
use crate::health::{HealthHandle, HealthRegistry};

/// A component failed to start; the ones started before it have been stopped again.
#[derive(Debug, thiserror::Error)]
// The cause is part of the message and deliberately not also `source()`: error reporters that
// walk the chain (anyhow's `{:#}`) would otherwise print it twice.
#[error("component '{component}' failed to start: {cause}")]
pub struct StartError {
    /// The component that failed.
    pub component: String,
    /// Its error.
    pub cause: BoxError,
    /// How stopping the already-started components went.
    pub rollback: StopReport,
}

/// How one component's stop ended.
#[derive(Debug)]
pub enum StopOutcome {
    /// Stopped, and all its tasks ended, within the deadline.
    Stopped,
    /// `stop` returned an error (its tasks were still waited for).
    Failed(BoxError),
    /// The deadline passed; the component and its remaining tasks were abandoned.
    Abandoned,
}

/// The outcome of stopping components, in the order they were stopped.
#[derive(Debug, Default)]
pub struct StopReport {
    /// `(component name, outcome, time it took)` for each component stopped.
    pub components: Vec<(String, StopOutcome, Duration)>,
}

impl StopReport {
    /// True when every component stopped cleanly within its deadline.
    pub fn is_clean(&self) -> bool {
        self.components
            .iter()
            .all(|(_, outcome, _)| matches!(outcome, StopOutcome::Stopped))
    }
}

struct Slot {
    component: Box<dyn Component>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    health: HealthHandle,
}

/// Owns the daemon's components and runs their lifecycle.
pub struct Supervisor {
    slots: Vec<Slot>,
    /// How many of `slots` (a prefix) are currently started.
    started: usize,
    stop_timeout: Duration,
    health: HealthRegistry,
    stop_request: StopRequest,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.slots.iter().map(|s| s.component.name()).collect();
        f.debug_struct("Supervisor")
            .field("components", &names)
            .field("started", &self.started)
            .field("stop_timeout", &self.stop_timeout)
            .finish()
    }
}

impl Supervisor {
    /// Creates a supervisor whose component stops are each bounded by `stop_timeout`.
    pub fn new(stop_timeout: Duration, health: HealthRegistry, stop_request: StopRequest) -> Self {
        Self {
            slots: Vec::new(),
            started: 0,
            stop_timeout,
            health,
            stop_request,
        }
    }

    /// Adds a component; components start in the order they are added.
    pub fn register(&mut self, component: impl Component + 'static) {
        let health = self
            .health
            .register(component.name(), component.health_interval());
        self.slots.push(Slot {
            component: Box::new(component),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            health,
        });
    }

    /// The registry every component reports to.
    pub fn health(&self) -> &HealthRegistry {
        &self.health
    }

    /// Names of the registered components, in start order.
    pub fn component_names(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|slot| slot.component.name().to_owned())
            .collect()
    }

    /// Starts every registered component in order. If one fails, those already started are stopped
    /// in reverse order and the error names the one that failed.
    pub async fn start(&mut self) -> Result<(), StartError> {
        while self.started < self.slots.len() {
            let slot = &mut self.slots[self.started];
            let name = slot.component.name().to_owned();
            let ctx = StartContext::new(
                slot.shutdown.clone(),
                slot.tasks.clone(),
                slot.health.clone(),
                self.stop_request.clone(),
            );
            let begun = Instant::now();
            tracing::debug!(component = %name, "starting component");
            match slot.component.start(ctx).await {
                Ok(()) => {
                    self.health.mark_started(&name);
                    self.started += 1;
                    tracing::info!(
                        "component {name} started in {:.1}ms",
                        begun.elapsed().as_secs_f64() * 1e3
                    );
                }
                Err(source) => {
                    tracing::error!("component {name} failed to start: {source}");
                    // Tasks it may have spawned before failing must end too.
                    slot.shutdown.cancel();
                    slot.tasks.close();
                    let rollback = self.stop().await;
                    return Err(StartError {
                        component: name,
                        cause: source,
                        rollback,
                    });
                }
            }
        }
        Ok(())
    }

    /// Stops every started component in reverse start order. Each component gets `stop_timeout`;
    /// one that overruns is logged and abandoned and the rest still stop.
    pub async fn stop(&mut self) -> StopReport {
        let mut report = StopReport::default();
        while self.started > 0 {
            self.started -= 1;
            let slot = &mut self.slots[self.started];
            let name = slot.component.name().to_owned();
            let begun = Instant::now();
            let outcome = stop_one(slot, self.stop_timeout).await;
            let took = begun.elapsed();
            self.health.mark_stopped(&name);
            match &outcome {
                StopOutcome::Stopped => {
                    tracing::info!(
                        "component {name} stopped in {:.1}ms",
                        took.as_secs_f64() * 1e3
                    );
                }
                StopOutcome::Failed(error) => {
                    tracing::error!("component {name} failed to stop cleanly: {error}");
                }
                StopOutcome::Abandoned => tracing::error!(
                    "component {name} did not stop within {:?} (shutdown_timeout); abandoning it",
                    self.stop_timeout
                ),
            }
            report.components.push((name, outcome, took));
        }
        report
    }
}

async fn stop_one(slot: &mut Slot, deadline: Duration) -> StopOutcome {
    slot.shutdown.cancel();
    let tasks = slot.tasks.clone();
    let component = &mut slot.component;
    let stopping = async move {
        let result = component.stop().await;
        tasks.close();
        tasks.wait().await;
        result
    };
    match tokio::time::timeout(deadline, stopping).await {
        Ok(Ok(())) => StopOutcome::Stopped,
        Ok(Err(error)) => StopOutcome::Failed(error),
        Err(_elapsed) => StopOutcome::Abandoned,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;

    type Journal = Arc<Mutex<Vec<String>>>;

    /// A component that records its lifecycle in a shared journal.
    struct Probe {
        name: String,
        journal: Journal,
        fail_start: bool,
        hang_on_stop: bool,
        spawn_worker: bool,
    }

    impl Probe {
        fn new(name: &str, journal: &Journal) -> Self {
            Self {
                name: name.to_owned(),
                journal: journal.clone(),
                fail_start: false,
                hang_on_stop: false,
                spawn_worker: false,
            }
        }

        fn log(&self, event: &str) {
            self.journal
                .lock()
                .expect("journal lock")
                .push(format!("{event} {}", self.name));
        }
    }

    #[async_trait]
    impl Component for Probe {
        fn name(&self) -> &str {
            &self.name
        }

        async fn start(&mut self, ctx: StartContext) -> Result<(), BoxError> {
            if self.fail_start {
                self.log("failed");
                return Err(format!("{} cannot bind its socket", self.name).into());
            }
            if self.spawn_worker {
                let shutdown = ctx.shutdown().clone();
                let journal = self.journal.clone();
                let name = self.name.clone();
                ctx.spawn(async move {
                    shutdown.cancelled().await;
                    journal
                        .lock()
                        .expect("journal lock")
                        .push(format!("worker-exit {name}"));
                });
            }
            self.log("start");
            Ok(())
        }

        async fn stop(&mut self) -> Result<(), BoxError> {
            self.log("stop");
            if self.hang_on_stop {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }

    fn supervisor() -> Supervisor {
        Supervisor::new(
            Duration::from_secs(30),
            HealthRegistry::new(),
            StopRequest::new(),
        )
    }

    fn entries(journal: &Journal) -> Vec<String> {
        journal.lock().expect("journal lock").clone()
    }

    #[tokio::test(start_paused = true)]
    async fn starts_in_registration_order_and_stops_in_reverse() {
        let journal = Journal::default();
        let mut sup = supervisor();
        for name in ["config", "ipc", "api"] {
            sup.register(Probe::new(name, &journal));
        }
        sup.start().await.expect("start");
        assert!(sup.health().is_ready());
        let report = sup.stop().await;
        assert!(report.is_clean());
        assert_eq!(
            entries(&journal),
            [
                "start config",
                "start ipc",
                "start api",
                "stop api",
                "stop ipc",
                "stop config"
            ]
        );
        assert!(!sup.health().is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn failure_of_third_component_stops_second_then_first_and_names_the_third() {
        let journal = Journal::default();
        let mut sup = supervisor();
        sup.register(Probe::new("one", &journal));
        sup.register(Probe::new("two", &journal));
        let mut third = Probe::new("three", &journal);
        third.fail_start = true;
        sup.register(third);
        sup.register(Probe::new("four", &journal));

        let error = sup.start().await.expect_err("third component fails");
        assert_eq!(error.component, "three");
        assert!(error.to_string().contains("'three' failed to start"));
        assert!(error.to_string().contains("three cannot bind its socket"));
        assert_eq!(
            entries(&journal),
            [
                "start one",
                "start two",
                "failed three",
                "stop two",
                "stop one"
            ]
        );
        let stopped: Vec<&str> = error
            .rollback
            .components
            .iter()
            .map(|(name, _, _)| name.as_str())
            .collect();
        assert_eq!(stopped, ["two", "one"]);
    }

    #[tokio::test(start_paused = true)]
    async fn hanging_stop_is_cut_at_the_deadline_and_the_others_still_stop() {
        let journal = Journal::default();
        let mut sup = Supervisor::new(
            Duration::from_secs(5),
            HealthRegistry::new(),
            StopRequest::new(),
        );
        sup.register(Probe::new("first", &journal));
        let mut stuck = Probe::new("stuck", &journal);
        stuck.hang_on_stop = true;
        sup.register(stuck);
        sup.register(Probe::new("last", &journal));
        sup.start().await.expect("start");

        let begun = Instant::now();
        let report = sup.stop().await;
        // Paused time: the only time that passes is the abandoned component's deadline.
        assert_eq!(begun.elapsed(), Duration::from_secs(5));
        let outcomes: Vec<(&str, bool)> = report
            .components
            .iter()
            .map(|(name, outcome, _)| (name.as_str(), matches!(outcome, StopOutcome::Abandoned)))
            .collect();
        assert_eq!(
            outcomes,
            [("last", false), ("stuck", true), ("first", false)]
        );
        assert!(!report.is_clean());
        assert_eq!(
            entries(&journal),
            [
                "start first",
                "start stuck",
                "start last",
                "stop last",
                "stop stuck",
                "stop first"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_cancels_the_token_and_waits_for_tracked_tasks() {
        let journal = Journal::default();
        let mut sup = supervisor();
        let mut worker = Probe::new("worker", &journal);
        worker.spawn_worker = true;
        sup.register(worker);
        sup.start().await.expect("start");
        assert!(sup.stop().await.is_clean());
        assert_eq!(
            entries(&journal),
            ["start worker", "stop worker", "worker-exit worker"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_request_is_visible_to_the_daemon_with_its_first_reason() {
        let request = StopRequest::new();
        assert!(!request.is_requested());
        request.request("POST /agent/stop");
        request.request("second");
        request.requested().await;
        assert_eq!(request.reason().as_deref(), Some("POST /agent/stop"));
    }
}
