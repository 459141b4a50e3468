//! `dogd-bench`: measures dogd against bare baselines in one run, so ratios are comparable on a
//! shared, noisy machine. Results go to BENCHMARKS.md by hand, with the command that produced them.

mod api;
mod dogstatsd;
mod pipeline;
mod startup;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "dogd-bench", about = "Side-by-side benchmarks of dogd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The CMD server (GET /agent/version, gRPC GetHostname) against bare hyper/tonic servers with
    /// the same certificate, loaded with h2load.
    Api(api::ApiArgs),
    /// Process start until the API answers, and idle RSS, of the real `dogd run`.
    Startup(startup::StartupArgs),
    /// DogStatsD ingest: max zero-loss rate on one core against statsd and collectd, parser
    /// throughput, memory per context.
    Dogstatsd(dogstatsd::DogstatsdArgs),
    /// The metrics pipeline: end-to-end samples/s (DogStatsD in, payloads at the fake intake)
    /// against ingest only, and flush time and memory with 1M contexts.
    Pipeline(pipeline::PipelineArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Api(args) => api::run(&args),
        Command::Startup(args) => startup::run(&args),
        Command::Dogstatsd(args) => dogstatsd::run(&args),
        Command::Pipeline(args) => pipeline::run(&args),
    }
}
