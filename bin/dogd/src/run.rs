//! `dogd run`: the one place components are built and wired, in dependency order.

use std::process::ExitCode;
use std::time::Instant;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dogd_api::{ApiBuilder, ApiServer, ApiSettings, BuildInfo};
use dogd_config::{ApiServerConfig, Config, ConfigError, GeneralConfig, LogConfig};
use dogd_core::{HealthRegistry, StopRequest, Supervisor};
use dogd_ipc::{AuthToken, IpcCert};
use tokio::signal::unix::{SignalKind, signal};

/// Builds every typed view of the configuration so an invalid one is reported before anything
/// starts (exit code 2).
pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    let general = GeneralConfig::from_config(config)?;
    LogConfig::from_config(config)?;
    ApiServerConfig::from_config(config)?;
    if let Some(hostname) = &general.hostname {
        dogd_hostname::validate(hostname).map_err(|reason| ConfigError::InvalidValue {
            key: "hostname".to_owned(),
            value: format!("{hostname:?}"),
            origin: config
                .get("hostname")
                .map_or_else(|| "config".to_owned(), |setting| setting.source.to_string()),
            reason,
        })?;
    }
    Ok(())
}

/// Runs the daemon until a signal or a stop request, then stops it gracefully.
pub(crate) fn main(config: Config) -> ExitCode {
    let started_at = Instant::now();
    let log_control = match LogConfig::from_config(&config)
        .map_err(anyhow::Error::from)
        .and_then(|log| crate::logging::init(&log))
    {
        Ok(control) => control,
        Err(error) => {
            eprintln!("dogd: cannot set up logging: {error:#}");
            return ExitCode::from(crate::EXIT_BAD_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dogd-worker")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(serve(config, log_control, started_at));
    // Tasks of a component abandoned at its stop deadline must not hold the process open.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("dogd stopped with an error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    config: Config,
    _log_control: crate::logging::LogLevelControl,
    started_at: Instant,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let general = GeneralConfig::from_config(&config)?;
    let api_config = ApiServerConfig::from_config(&config)?;
    match config.file_path() {
        Some(path) => tracing::info!(
            "dogd {} starting with config file {}",
            env!("CARGO_PKG_VERSION"),
            path.display()
        ),
        None => tracing::info!(
            "dogd {} starting on built-in defaults (no config file)",
            env!("CARGO_PKG_VERSION")
        ),
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    prepare_state_dir(&general.run_path)?;

    // Signals are installed before anything starts so a signal during start is not lost.
    let mut sigterm =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut sigint =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;

    let hostname = dogd_hostname::resolve(general.hostname.as_deref())
        .await
        .context("cannot determine the hostname")?;
    tracing::info!("hostname: {hostname}");

    // IPC credentials come first: every API server and client depends on them.
    let token = AuthToken::load_or_create(&api_config.auth_token_path)?;
    let cert = IpcCert::load_or_create(&api_config.ipc_cert_path, &certificate_hosts(&api_config))?;
    tracing::info!(
        "successfully loaded the IPC auth primitives (fingerprint: {})",
        dogd_ipc::fingerprint(&token, &cert)
    );

    let telemetry = dogd_telemetry::Registry::new();
    let health = HealthRegistry::new();
    let stop_request = StopRequest::new();
    let mut supervisor = Supervisor::new(general.shutdown_timeout, health, stop_request.clone());

    // Components are built and registered here, in dependency order. Each one that serves API
    // routes registers them on the builder before the API server is built.
    let api_builder = ApiBuilder::new();
    let api = ApiServer::new(
        ApiSettings {
            api: api_config.clone(),
            token,
            cert,
            hostname,
            build: BuildInfo {
                version: crate::cli::version::BUILD.version.to_owned(),
                commit: crate::cli::version::BUILD.commit.to_owned(),
            },
            telemetry,
            config: config.clone(),
            drain_grace: drain_grace(general.shutdown_timeout),
        },
        api_builder,
    )?;
    supervisor.register(api);

    supervisor.start().await.context("dogd could not start")?;
    tracing::info!(
        "dogd is ready: components [{}] started in {:.1}ms (state in {})",
        supervisor.component_names().join(", "),
        started_at.elapsed().as_secs_f64() * 1e3,
        general.run_path.display()
    );

    let reason = tokio::select! {
        _ = sigterm.recv() => "received SIGTERM".to_owned(),
        _ = sigint.recv() => "received SIGINT".to_owned(),
        () = stop_request.requested() => stop_request.reason().unwrap_or_else(|| "stop requested".to_owned()),
    };
    tracing::info!("{reason}, stopping gracefully (a second signal exits at once)");

    let stopping = supervisor.stop();
    tokio::pin!(stopping);
    let report = tokio::select! {
        report = &mut stopping => report,
        _ = sigterm.recv() => anyhow::bail!("second signal received during shutdown; exiting without waiting"),
        _ = sigint.recv() => anyhow::bail!("second signal received during shutdown; exiting without waiting"),
    };
    if report.is_clean() {
        tracing::info!("dogd stopped");
        Ok(())
    } else {
        anyhow::bail!("some components did not stop cleanly: {report:?}")
    }
}

/// Hosts the IPC certificate must cover besides the defaults: the CMD host and, when enabled, the
/// IPC server host.
fn certificate_hosts(api: &ApiServerConfig) -> Vec<String> {
    let mut hosts = vec![api.cmd_host.clone()];
    if let Some((host, _)) = &api.ipc_server {
        hosts.push(host.clone());
    }
    hosts.retain(|host| !host.is_empty());
    hosts.dedup();
    hosts
}

/// How long open API connections may finish their work on stop: a slice of the component's
/// deadline, so streams that never end cannot use all of it.
fn drain_grace(shutdown_timeout: Duration) -> Duration {
    (shutdown_timeout / 2).min(Duration::from_secs(5))
}

/// Creates the state directory, private to the user (0700) when we create it.
fn prepare_state_dir(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| {
            format!(
                "cannot create the state directory (run_path) {}",
                path.display()
            )
        })
}
