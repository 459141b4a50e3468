//! The component model every dogd subsystem plugs into.
//!
//! A [`Component`] is started with a [`StartContext`] that carries its shutdown token, a task tracker
//! and a health handle. The [`Supervisor`] starts components in registration order and stops them in
//! reverse order, each stop bounded by a deadline. The [`HealthRegistry`] answers "is everything
//! started and checking in?".
//!
//! This crate is deliberately generic: it knows nothing about Datadog, DogStatsD or the agent.

#![warn(missing_docs)]

pub mod clock;
mod component;
mod health;
mod supervisor;

pub use component::{BoxError, Component, StartContext, StopRequest};
pub use health::{HealthHandle, HealthRegistry, HealthReport, UnhealthyComponent};
pub use supervisor::{StartError, StopOutcome, StopReport, Supervisor};
