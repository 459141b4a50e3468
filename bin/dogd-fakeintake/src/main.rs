//! `dogd-fakeintake`: a fake Datadog intake for tests and local runs (see the library for the
//! routes). The first line on stdout is `dogd-fakeintake listening on http://<addr>`, so that a
//! test starting it with `--listen 127.0.0.1:0` learns its port.

#![warn(missing_docs)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;

use dogd_fakeintake::Options;

/// A fake Datadog intake: accepts series, sketches, check runs and events, decodes and stores
/// them, and serves them back as JSON.
#[derive(Debug, Parser)]
#[command(name = "dogd-fakeintake", version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,

    /// An API key to refuse with 403 on every route (repeatable).
    #[arg(long = "reject-api-key", value_name = "KEY")]
    reject_api_key: Vec<String>,

    /// Make the next N intake requests fail (with --fail-status).
    #[arg(long, default_value_t = 0, value_name = "N")]
    fail_next: u32,

    /// The status injected failures answer with.
    #[arg(long, default_value_t = 500, value_name = "CODE",
          value_parser = clap::value_parser!(u16).range(100..=599))]
    fail_status: u16,

    /// Payloads kept per endpoint; the oldest are forgotten beyond it.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_payloads: usize,

    /// Largest request body accepted, compressed or decompressed, in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    max_body_bytes: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(cli))
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: pick another address with --listen (port 0 picks a free one)",
                cli.listen
            )
        })?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    // Tests read this line to learn the port: print it first and flush it now.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "dogd-fakeintake listening on http://{addr}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;

    let options = Options {
        reject_api_keys: cli.reject_api_key.into_iter().collect::<BTreeSet<_>>(),
        fail_next: cli.fail_next,
        fail_status: cli.fail_status,
        max_payloads: cli.max_payloads,
        max_body_bytes: cli.max_body_bytes,
    };
    dogd_fakeintake::serve(listener, options, shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("dogd-fakeintake stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {error}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!("cannot listen for SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
