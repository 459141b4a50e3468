//! The DogStatsD component: binds the listeners, runs the parser workers, and stops in order
//! (listeners first, then the workers drain what was queued).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use dogd_core::{BoxError, Component, StartContext};
use dogd_telemetry::{Registry, TelemetryError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::DogStatsdConfig;
use crate::enrich::NameRules;
use crate::listener::{PacketBatch, Queues, udp, uds};
use crate::mapper::{Mapper, MapperError};
use crate::origin::OriginResolver;
use crate::parse::ParseOptions;
use crate::sample::SampleSink;
use crate::stats::MetricStats;
use crate::telemetry::DsdTelemetry;
use crate::worker::{self, Shared};

/// Why the server could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum DogStatsdError {
    /// `dogstatsd_mapper_profiles` is invalid.
    #[error("invalid dogstatsd_mapper_profiles: {0}")]
    Mapper(#[from] MapperError),
    /// A telemetry family clashed.
    #[error("cannot register DogStatsD telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
    /// The UDP port could not be bound.
    #[error("cannot listen for DogStatsD on UDP {addr} (dogstatsd_port): {source}")]
    Udp {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A Unix socket could not be set up.
    #[error(transparent)]
    SocketFile(#[from] uds::SocketFileError),
    /// Every transport is disabled.
    #[error(
        "DogStatsD is enabled but listens on nothing: set dogstatsd_port, dogstatsd_socket or dogstatsd_stream_socket (or use_dogstatsd: false)"
    )]
    NoListener,
}

/// Where the listeners are, once started.
#[derive(Clone, Debug, Default)]
pub struct DogStatsdAddrs {
    udp: Arc<OnceLock<SocketAddr>>,
}

impl DogStatsdAddrs {
    /// The UDP address, once bound.
    pub fn udp(&self) -> Option<SocketAddr> {
        self.udp.get().copied()
    }
}

/// The DogStatsD component (`dogstatsd`).
pub struct DogStatsdServer {
    config: DogStatsdConfig,
    shared: Arc<Shared>,
    addrs: DogStatsdAddrs,
    telemetry: DsdTelemetry,
    registry: Registry,
    /// Cancelled first on stop: listeners stop reading, then workers drain.
    listeners_stop: CancellationToken,
    /// The workers' queues, once started (for the status page's fill level).
    queues: Arc<std::sync::Mutex<Option<Queues>>>,
}

impl std::fmt::Debug for DogStatsdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DogStatsdServer")
            .field("config", &self.config)
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl DogStatsdServer {
    /// Builds the server: validates the mapper profiles and name rules, registers telemetry.
    pub fn new(
        config: DogStatsdConfig,
        hostname: &str,
        sink: Arc<dyn SampleSink>,
        registry: &Registry,
        stats: MetricStats,
    ) -> Result<Self, DogStatsdError> {
        let mapper = match &config.mapper_profiles {
            Some(profiles) => Some(Mapper::from_profiles(profiles, config.mapper_cache_size)?),
            None => None,
        };
        let telemetry = DsdTelemetry::new(registry)?;
        let names = NameRules::new(
            config.namespace.as_deref(),
            config.namespace_blacklist.as_deref(),
            &config.blocklist,
            config.blocklist_match_prefix,
        );
        let shared = Arc::new(Shared {
            options: ParseOptions {
                honor_timestamps: config.honor_timestamps,
                honor_client_origin: config.origin_detection_client,
            },
            eol_required_udp: config.eol_required_udp,
            eol_required_uds: config.eol_required_uds,
            hostname: Arc::from(hostname),
            extra_tags: config.extra_tags.clone(),
            names,
            mapper,
            origin_optout: config.origin_optout,
            entity_id_precedence: config.entity_id_precedence,
            quiet_parse_errors: config.quiet_parse_errors,
            sink,
            telemetry: telemetry.clone(),
            stats,
        });
        Ok(Self {
            config,
            shared,
            addrs: DogStatsdAddrs::default(),
            telemetry,
            registry: registry.clone(),
            listeners_stop: CancellationToken::new(),
            queues: Arc::default(),
        })
    }

    /// Where the listeners are, once started.
    pub fn addrs(&self) -> DogStatsdAddrs {
        self.addrs.clone()
    }

    /// The per-metric stats (shared with the API route and the runtime setting).
    pub fn stats(&self) -> MetricStats {
        self.shared.stats.clone()
    }

    /// The status section provider.
    pub fn status(&self) -> crate::api::DogStatsdStatus {
        crate::api::DogStatsdStatus::new(
            self.config.clone(),
            self.telemetry.clone(),
            self.addrs.clone(),
            self.queues.clone(),
        )
    }

    fn worker_count(&self) -> usize {
        match self.config.workers {
            0 => std::thread::available_parallelism()
                .map_or(1, |cores| cores.get().saturating_sub(1))
                .max(1),
            count => count,
        }
    }
}

#[async_trait]
impl Component for DogStatsdServer {
    fn name(&self) -> &str {
        "dogstatsd"
    }

    async fn start(&mut self, ctx: StartContext) -> Result<(), BoxError> {
        let config = &self.config;
        // Bind everything before spawning anything: a failure leaves nothing half-started.
        let udp_socket = if config.udp_port > 0 {
            let addr = tokio::net::lookup_host((config.udp_host.as_str(), config.udp_port))
                .await
                .ok()
                .and_then(|mut addrs| addrs.find(SocketAddr::is_ipv4))
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], config.udp_port)));
            let socket =
                udp::bind(addr, config.so_rcvbuf).map_err(|source| DogStatsdError::Udp {
                    addr: addr.to_string(),
                    source,
                })?;
            Some(socket)
        } else {
            None
        };
        let origins = config.origin_detection.then(OriginResolver::new);
        let datagram = match &config.socket {
            Some(path) => Some(uds::bind_datagram(
                path,
                config.so_rcvbuf,
                origins.is_some(),
            )?),
            None => None,
        };
        let stream = match &config.stream_socket {
            Some(path) => Some(uds::bind_stream(path)?),
            None => None,
        };
        if udp_socket.is_none() && datagram.is_none() && stream.is_none() {
            return Err(DogStatsdError::NoListener.into());
        }

        // One queue per worker; listeners spread batches over them.
        let workers = self.worker_count();
        let per_worker = (config.queue_size / workers).max(1);
        let mut senders = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (sender, receiver) = mpsc::channel::<PacketBatch>(per_worker);
            senders.push(sender);
            ctx.spawn(worker::run(
                self.shared.clone(),
                receiver,
                ctx.shutdown().clone(),
            ));
        }
        let sender = Queues::new(senders);
        register_queue_gauge(&self.registry, &sender)?;
        *self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sender.clone());

        let stop = self.listeners_stop.clone();
        if let Some(socket) = udp_socket {
            let local = socket.local_addr()?;
            let _ = self.addrs.udp.set(local);
            tracing::info!("DogStatsD listening on UDP {local}");
            ctx.spawn(udp::run(
                socket,
                config.buffer_size,
                sender.clone(),
                self.telemetry.udp.clone(),
                stop.clone(),
            ));
        }
        if let Some((socket, file)) = datagram {
            tracing::info!(
                "DogStatsD listening on Unix datagram socket {}",
                config
                    .socket
                    .as_ref()
                    .map_or_else(String::new, |p| p.display().to_string())
            );
            ctx.spawn(uds::run_datagram(
                socket,
                file,
                config.buffer_size,
                origins.clone(),
                sender.clone(),
                self.telemetry.uds.clone(),
                stop.clone(),
            ));
        }
        if let Some((listener, file)) = stream {
            tracing::info!(
                "DogStatsD listening on Unix stream socket {}",
                config
                    .stream_socket
                    .as_ref()
                    .map_or_else(String::new, |p| p.display().to_string())
            );
            ctx.spawn(uds::run_stream(
                listener,
                file,
                config.buffer_size,
                origins,
                sender,
                self.telemetry.uds_stream.clone(),
                stop.clone(),
                ctx.tasks().clone(),
            ));
        }
        // Stop the listeners as soon as the component is told to stop; the workers see the same
        // token and drain their queues.
        let shutdown = ctx.shutdown().clone();
        ctx.spawn(async move {
            shutdown.cancelled().await;
            stop.cancel();
        });
        ctx.health().report_healthy();
        Ok(())
    }
}

/// Registers the queue fill gauge (batches waiting for the parsers).
fn register_queue_gauge(registry: &Registry, queues: &Queues) -> Result<(), TelemetryError> {
    let queues = queues.clone();
    let result = registry.gauge_fn(
        "dogstatsd__packets_channel_size",
        "Packet batches waiting for the parsers.",
        move || queues.queued() as f64,
    );
    match result {
        // A server restarted in the same process (tests) keeps the first gauge.
        Err(TelemetryError::Conflict { .. }) | Ok(()) => Ok(()),
        Err(other) => Err(other),
    }
}
