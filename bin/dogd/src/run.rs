//! `dogd run`: the one place components are built and wired, in dependency order.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dogd_aggregator::{Aggregator, AggregatorConfig, FlushSink};
use dogd_api::{ApiBuilder, ApiServer, ApiSettings, BuildInfo, ListenAddrs};
use dogd_config::{
    ApiServerConfig, Config, ConfigError, ConfigSetting, GeneralConfig, LogConfig, LogLevel,
    RuntimeSettings,
};
use dogd_core::{HealthRegistry, StopRequest, Supervisor};
use dogd_dogstatsd::stats::MetricStats;
use dogd_dogstatsd::{DogStatsdConfig, DogStatsdServer};
use dogd_forwarder::{Forwarder, ForwarderConfig, ForwardingSink, LocalSink, Serializer};
use dogd_ipc::{AuthToken, IpcCert};
use dogd_ops::{
    BuildFacts, CoreStatus, Ops, RecentLogs, SecretsService, StatusRegistry, TelemetryServer,
};
use dogd_scrubber::Scrubber;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::version::BUILD;

/// Log lines kept in memory for flares.
const RECENT_LOG_LINES: usize = 2000;

/// Builds every typed view of the configuration so an invalid one is reported before anything
/// starts (exit code 2).
pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    let general = GeneralConfig::from_config(config)?;
    LogConfig::from_config(config)?;
    ApiServerConfig::from_config(config)?;
    AggregatorConfig::from_config(config)?;
    ForwarderConfig::from_config(config, &general.run_path, BUILD.version)?;
    Serializer::from_config(config, "")?;
    let dogstatsd = DogStatsdConfig::from_config(config)?;
    if let Some(profiles) = &dogstatsd.mapper_profiles {
        dogd_dogstatsd::mapper::Mapper::from_profiles(profiles, dogstatsd.mapper_cache_size)
            .map_err(|error| {
                config.invalid_value(
                    "dogstatsd_mapper_profiles",
                    "(see the file)",
                    error.to_string(),
                )
            })?;
    }
    if let Some(hostname) = &general.hostname {
        dogd_hostname::validate(hostname)
            .map_err(|reason| config.invalid_value("hostname", format!("{hostname:?}"), reason))?;
    }
    Ok(())
}

/// What this build is, for status and flares.
pub(crate) fn build_facts() -> BuildFacts {
    BuildFacts {
        version: BUILD.version.to_owned(),
        commit: BUILD.commit.to_owned(),
        rustc: BUILD.rustc.to_owned(),
    }
}

/// Runs the daemon until a signal or a stop request, then stops it gracefully.
pub(crate) fn main(config: Config) -> ExitCode {
    let started_at = Instant::now();
    // One scrubber for everything that leaves the process: logs, config dumps, flares.
    let scrubber = Scrubber::new();
    scrubber.add_known_secrets(config.secret_values());
    let recent_logs = RecentLogs::new(RECENT_LOG_LINES);
    let log_control = match LogConfig::from_config(&config)
        .map_err(anyhow::Error::from)
        .and_then(|log| crate::logging::init(&log, scrubber.clone(), recent_logs.clone()))
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
    let daemon = Daemon {
        config: Arc::new(config),
        log_control,
        scrubber,
        recent_logs,
        started_at,
    };
    let outcome = runtime.block_on(daemon.serve());
    // Tasks of a component abandoned at its stop deadline must not hold the process open.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("dogd stopped with an error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `serve` starts from.
struct Daemon {
    config: Arc<Config>,
    log_control: crate::logging::LogLevelControl,
    scrubber: Scrubber,
    recent_logs: RecentLogs,
    started_at: Instant,
}

impl Daemon {
    async fn serve(self) -> anyhow::Result<()> {
        let Self {
            config,
            log_control,
            scrubber,
            recent_logs,
            started_at,
        } = self;
        let general = GeneralConfig::from_config(&config)?;
        let api_config = ApiServerConfig::from_config(&config)?;
        let log_config = LogConfig::from_config(&config)?;
        match config.file_path() {
            Some(path) => tracing::info!(
                "dogd {} starting with config file {}",
                BUILD.version,
                path.display()
            ),
            None => tracing::info!(
                "dogd {} starting on built-in defaults (no config file)",
                BUILD.version
            ),
        }
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        if !config.secret_handles().is_empty() {
            tracing::info!(
                "resolved {} secrets from secret_backend_command",
                config.secret_handles().len()
            );
        }
        prepare_state_dir(&general.run_path)?;
        let _pid_file = PidFile::create(&general.run_path)?;

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
        let cert =
            IpcCert::load_or_create(&api_config.ipc_cert_path, &certificate_hosts(&api_config))?;
        scrubber.add_known_secrets([token.expose().to_owned()]);
        tracing::info!(
            "successfully loaded the IPC auth primitives (fingerprint: {})",
            dogd_ipc::fingerprint(&token, &cert)
        );

        let telemetry = dogd_telemetry::Registry::new();
        let health = HealthRegistry::new();
        let stop_request = StopRequest::new();
        let mut supervisor = Supervisor::new(
            general.shutdown_timeout,
            health.clone(),
            stop_request.clone(),
        );
        let runtime_settings = RuntimeSettings::new();
        runtime_settings.register(Arc::new(ConfigSetting::new(
            config.clone(),
            "log_level",
            "The minimum level of log lines; takes effect at once.",
            move |value| {
                let level = value
                    .as_str()
                    .and_then(LogLevel::parse)
                    .ok_or_else(|| format!("{value} is not a log level"))?;
                log_control.set(level).map_err(|error| format!("{error:#}"))
            },
        )));
        let status = StatusRegistry::new();
        let listen = ListenAddrs::default();
        status.register(Arc::new(CoreStatus {
            started: started_at,
            build: build_facts(),
            hostname: hostname.clone(),
            config_file: config.file_path().map(Path::to_path_buf),
            run_path: general.run_path.clone(),
            listen: listen.clone(),
            health: health.clone(),
        }));

        // Components are built and registered here, in dependency order. Each one that serves API
        // routes registers them on the builder before the API server is built.
        let telemetry_port = config.get_port("telemetry.port")?;
        if telemetry_port > 0 {
            supervisor.register(TelemetryServer::new(telemetry_port, telemetry.clone()));
        }

        let mut api_builder = ApiBuilder::new();

        // The metrics pipeline, registered sink first so it stops last: DogStatsD → aggregator →
        // serializer + forwarder (or the local file sink when no API key is set).
        let flush_sink: Arc<dyn FlushSink> =
            match ForwarderConfig::from_config(&config, &general.run_path, BUILD.version)? {
                Some(forwarder_config) => {
                    match forwarder_config
                        .proxy
                        .for_target(&forwarder_config.base_url)
                    {
                        Some(proxy) => tracing::info!(
                            "forwarding to {} through proxy {proxy}",
                            forwarder_config.base_url
                        ),
                        None => tracing::info!("forwarding to {}", forwarder_config.base_url),
                    }
                    let forwarder = Forwarder::new(forwarder_config, &telemetry)?;
                    let sink = ForwardingSink::new(
                        Serializer::from_config(&config, &hostname)?,
                        forwarder.handle(),
                        &telemetry,
                    )?;
                    status.register(Arc::new(forwarder.status()));
                    supervisor.register(forwarder);
                    Arc::new(sink)
                }
                None => {
                    let sink = LocalSink::new(&general.run_path.join("local_sink"))?;
                    tracing::info!(
                        "no api_key set: flushes are written to {} instead of the intake",
                        sink.path().display()
                    );
                    status.register(Arc::new(sink.status()));
                    Arc::new(sink)
                }
            };
        let aggregator = Aggregator::new(
            AggregatorConfig::from_config(&config)?,
            flush_sink,
            &telemetry,
        )?;
        status.register(Arc::new(aggregator.status()));
        let aggregator_input = Arc::new(aggregator.input());
        supervisor.register(aggregator);

        let dogstatsd_config = DogStatsdConfig::from_config(&config)?;
        let dogstatsd_stats = if dogstatsd_config.enabled {
            let stats = MetricStats::new(dogstatsd_config.metrics_stats);
            let server = DogStatsdServer::new(
                dogstatsd_config,
                &hostname,
                aggregator_input,
                &telemetry,
                stats.clone(),
            )?;
            status.register(Arc::new(server.status()));
            runtime_settings.register(Arc::new(dogd_dogstatsd::api::stats_setting(
                config.clone(),
                stats.clone(),
            )));
            supervisor.register(server);
            Some(stats)
        } else {
            tracing::info!("DogStatsD is disabled (use_dogstatsd: false)");
            None
        };
        dogd_dogstatsd::api::register_stats_route(&mut api_builder, dogstatsd_stats);

        dogd_ops::register(
            &mut api_builder,
            Arc::new(Ops {
                config: config.clone(),
                runtime: runtime_settings,
                health,
                status,
                telemetry: telemetry.clone(),
                stop: stop_request.clone(),
                scrubber: scrubber.clone(),
                secrets: SecretsService::new(config.clone(), scrubber.clone()),
                flare_dir: general.run_path.join("flares"),
                log_file: log_config.file.clone(),
                recent_logs,
                hostname: hostname.clone(),
                build: build_facts(),
            }),
        );
        let api = ApiServer::new(
            ApiSettings {
                api: api_config.clone(),
                token,
                cert,
                hostname,
                build: BuildInfo {
                    version: BUILD.version.to_owned(),
                    commit: BUILD.commit.to_owned(),
                },
                telemetry,
                config: config.clone(),
                drain_grace: drain_grace(general.shutdown_timeout),
                listen,
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
fn prepare_state_dir(path: &Path) -> anyhow::Result<()> {
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

/// The name of the pid file in the state directory.
pub(crate) const PID_FILE: &str = "dogd.pid";

/// `<run_path>/dogd.pid`, holding this process's id while it runs (`dogd stop` waits on it).
struct PidFile(PathBuf);

impl PidFile {
    fn create(run_path: &Path) -> anyhow::Result<Self> {
        let path = run_path.join(PID_FILE);
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write the pid file {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only remove our own pid: another dogd may have started with this state directory since.
        if std::fs::read_to_string(&self.0)
            .is_ok_and(|pid| pid.trim() == std::process::id().to_string())
        {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
