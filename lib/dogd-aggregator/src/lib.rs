//! Aggregation of DogStatsD samples, as the agent does it: 10-second buckets aligned to the wall
//! clock, flushed every 15 seconds with only closed buckets sent; counters as rates, gauges,
//! sets, histograms as aggregates and percentiles, distributions as agent-compatible DDSketches;
//! timestamped samples through the no-aggregation pipeline.

#![warn(missing_docs)]

mod aggregator;
mod config;
pub mod flush;
pub mod histogram;
pub mod limiter;
pub mod sampler;
pub mod sketch;

pub use aggregator::{Aggregator, AggregatorInput, AggregatorStatus};
pub use config::AggregatorConfig;
pub use flush::{Flush, FlushSink, Point, Serie, SeriesType, SketchSerie};
pub use sketch::AgentSketch;
