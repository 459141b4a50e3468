//! The DogStatsD server: listeners (UDP, Unix datagram, Unix stream), the complete protocol
//! parser, origin detection, context interning, and per-metric stats.

#![warn(missing_docs)]

pub mod api;
mod config;
pub mod context;
pub mod enrich;
pub mod listener;
pub mod mapper;
pub mod origin;
pub mod parse;
pub mod sample;
mod server;
pub mod stats;
mod telemetry;
mod worker;

pub use config::DogStatsdConfig;
pub use server::{DogStatsdAddrs, DogStatsdError, DogStatsdServer};
