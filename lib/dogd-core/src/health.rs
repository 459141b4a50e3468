//! Health registry: readiness (every component started) and liveness (every component checking in).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Where a registered component stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Registered, `start` not finished yet.
    NotStarted,
    /// Started; `healthy` holds its last report.
    Running,
    /// Stopped (or abandoned) by the supervisor.
    Stopped,
}

#[derive(Debug)]
struct Entry {
    phase: Phase,
    /// `None` when healthy, else why not.
    problem: Option<String>,
    last_check_in: Instant,
    interval: Option<Duration>,
}

/// A shared map of component name to health. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct HealthRegistry {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
}

/// One component that is not healthy, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnhealthyComponent {
    /// The component's name.
    pub name: String,
    /// A short human explanation ("not started", "no check-in for 31s", or the component's own words).
    pub reason: String,
}

/// A snapshot of every registered component's health, names sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthReport {
    /// Components that are running and healthy.
    pub healthy: Vec<String>,
    /// Components that are not.
    pub unhealthy: Vec<UnhealthyComponent>,
}

impl HealthReport {
    /// True when no component is unhealthy.
    pub fn is_healthy(&self) -> bool {
        self.unhealthy.is_empty()
    }
}

impl HealthRegistry {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding this lock cannot leave an entry half-written (every update is a
        // single field store), so a poisoned lock is still safe to use.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a component. With an `interval`, the component is reported unhealthy when its
    /// handle has not checked in for longer than that.
    pub fn register(&self, name: &str, interval: Option<Duration>) -> HealthHandle {
        self.lock().insert(
            name.to_owned(),
            Entry {
                phase: Phase::NotStarted,
                problem: None,
                last_check_in: Instant::now(),
                interval,
            },
        );
        HealthHandle {
            name: Arc::from(name),
            registry: self.clone(),
        }
    }

    fn update(&self, name: &str, apply: impl FnOnce(&mut Entry)) {
        if let Some(entry) = self.lock().get_mut(name) {
            apply(entry);
        }
    }

    pub(crate) fn mark_started(&self, name: &str) {
        self.update(name, |entry| {
            entry.phase = Phase::Running;
            entry.last_check_in = Instant::now();
        });
    }

    pub(crate) fn mark_stopped(&self, name: &str) {
        self.update(name, |entry| entry.phase = Phase::Stopped);
    }

    /// Readiness: every registered component has started (and none has stopped).
    pub fn is_ready(&self) -> bool {
        self.lock()
            .values()
            .all(|entry| entry.phase == Phase::Running)
    }

    /// The current health of every registered component.
    pub fn report(&self) -> HealthReport {
        let now = Instant::now();
        let mut report = HealthReport::default();
        for (name, entry) in self.lock().iter() {
            let problem = match entry.phase {
                Phase::NotStarted => Some("not started".to_owned()),
                Phase::Stopped => Some("stopped".to_owned()),
                Phase::Running => entry.problem.clone().or_else(|| {
                    let interval = entry.interval?;
                    let silent = now.saturating_duration_since(entry.last_check_in);
                    (silent > interval).then(|| {
                        format!(
                            "no check-in for {}s (expected every {}s)",
                            silent.as_secs(),
                            interval.as_secs_f64()
                        )
                    })
                }),
            };
            match problem {
                None => report.healthy.push(name.clone()),
                Some(reason) => report.unhealthy.push(UnhealthyComponent {
                    name: name.clone(),
                    reason,
                }),
            }
        }
        report
    }
}

/// A component's handle on its own health entry.
#[derive(Clone, Debug)]
pub struct HealthHandle {
    name: Arc<str>,
    registry: HealthRegistry,
}

impl HealthHandle {
    /// The component this handle reports for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reports healthy and counts as a check-in.
    pub fn report_healthy(&self) {
        self.registry.update(&self.name, |entry| {
            entry.problem = None;
            entry.last_check_in = Instant::now();
        });
    }

    /// Reports unhealthy with a reason; it stays unhealthy until the next `report_healthy`.
    pub fn report_unhealthy(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.registry.update(&self.name, |entry| {
            entry.problem = Some(reason);
            entry.last_check_in = Instant::now();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn component_is_unhealthy_until_started() {
        let registry = HealthRegistry::new();
        let _handle = registry.register("api", None);
        assert!(!registry.is_ready());
        assert_eq!(registry.report().unhealthy[0].reason, "not started");
        registry.mark_started("api");
        assert!(registry.is_ready());
        assert_eq!(registry.report().healthy, vec!["api".to_owned()]);
    }

    #[tokio::test(start_paused = true)]
    async fn component_that_stops_checking_in_becomes_unhealthy() {
        let registry = HealthRegistry::new();
        let handle = registry.register("aggregator", Some(Duration::from_secs(10)));
        registry.mark_started("aggregator");
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(registry.report().is_healthy());
        tokio::time::advance(Duration::from_secs(2)).await;
        let report = registry.report();
        assert_eq!(report.unhealthy.len(), 1);
        assert!(
            report.unhealthy[0]
                .reason
                .starts_with("no check-in for 11s")
        );
        handle.report_healthy();
        assert!(registry.report().is_healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn reported_problem_stays_until_cleared() {
        let registry = HealthRegistry::new();
        let handle = registry.register("forwarder", None);
        registry.mark_started("forwarder");
        handle.report_unhealthy("intake unreachable");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(
            registry.report().unhealthy,
            vec![UnhealthyComponent {
                name: "forwarder".into(),
                reason: "intake unreachable".into()
            }]
        );
        handle.report_healthy();
        assert!(registry.report().is_healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn stopped_component_is_not_ready() {
        let registry = HealthRegistry::new();
        let _handle = registry.register("api", None);
        registry.mark_started("api");
        registry.mark_stopped("api");
        assert!(!registry.is_ready());
        assert_eq!(registry.report().unhealthy[0].reason, "stopped");
    }
}
