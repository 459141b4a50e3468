//! Every configuration key dogd knows: its type, default, environment variable and documentation.
//!
//! Like the agent's `pkg/config/setup`, the table is the single place a key is declared. Keys not in
//! the table are still loaded from `datadog.yaml` and readable through [`crate::Config::get`]; they are
//! just not validated or bound to an environment variable.

/// How a key's value is parsed and validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// `true`/`false` (also the strings Go's `strconv.ParseBool` accepts: `1`, `t`, `TRUE`, `0`, ...).
    Bool,
    /// A whole number in `min..=max` (a numeric string is accepted, as the agent's viper does).
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A number in `min..=max` (a numeric string is accepted).
    Float {
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// A duration: a number of seconds (`30`, `0.5`) or a Go duration string (`30s`, `1m30s`, `500ms`).
    Seconds,
    /// Free text (numbers and booleans are turned into text).
    Str,
    /// A filesystem path; empty means "not set".
    Path,
    /// A log level: `trace`, `debug`, `info`, `warn`/`warning`, `error`, `critical`, `off`.
    LogLevel,
    /// A list of strings: a YAML sequence, or one string split on whitespace (how `DD_TAGS` works).
    StrList,
    /// Any YAML value, passed through unvalidated (maps, nested structures).
    Any,
}

/// A TCP/UDP port: 0 to 65535.
pub const PORT: Kind = Kind::Int { min: 0, max: 65535 };

/// The built-in default of a key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Default {
    /// No value (the key is unset unless a file or the environment sets it).
    Unset,
    /// A boolean.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number (seconds for [`Kind::Seconds`]).
    Float(f64),
    /// A string.
    Str(&'static str),
    /// An empty list.
    EmptyList,
    /// A list of strings.
    List(&'static [&'static str]),
    /// The per-user state directory: `$XDG_STATE_HOME/dogd`, else `$HOME/.local/state/dogd`, else
    /// `./dogd-state` (so no root is needed).
    StateDir,
}

/// One configuration key.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    /// Dotted key as written in `datadog.yaml` (`agent_ipc.port` is `agent_ipc: {port: ..}`).
    pub key: &'static str,
    /// How the value is parsed.
    pub kind: Kind,
    /// The built-in default.
    pub default: Default,
    /// Whether the value is a credential: shown scrubbed everywhere.
    pub secret: bool,
    /// What the key controls.
    pub doc: &'static str,
    /// Standard variables read, in order, when the `DD_` one is unset (the proxy keys read
    /// `HTTPS_PROXY` and friends, as the agent does). Like the `DD_` variable they win over the
    /// file.
    pub fallback_env: &'static [&'static str],
}

impl KeySpec {
    /// The environment variable bound to this key, as the agent binds it: `DD_` + the key upper-cased
    /// with dots replaced by underscores (`agent_ipc.port` → `DD_AGENT_IPC_PORT`).
    pub fn env_var(&self) -> String {
        let mut name = String::with_capacity(self.key.len() + 3);
        name.push_str("DD_");
        for c in self.key.chars() {
            name.push(if c == '.' {
                '_'
            } else {
                c.to_ascii_uppercase()
            });
        }
        name
    }
}

const fn key(key: &'static str, kind: Kind, default: Default, doc: &'static str) -> KeySpec {
    KeySpec {
        key,
        kind,
        default,
        secret: false,
        doc,
        fallback_env: &[],
    }
}

const fn secret(key: &'static str, doc: &'static str) -> KeySpec {
    KeySpec {
        key,
        kind: Kind::Str,
        default: Default::Unset,
        secret: true,
        doc,
        fallback_env: &[],
    }
}

impl KeySpec {
    const fn or_env(mut self, names: &'static [&'static str]) -> Self {
        self.fallback_env = names;
        self
    }
}

/// All keys dogd declares, grouped by the component that reads them.
pub static KEYS: &[KeySpec] = &[
    // General.
    secret(
        "api_key",
        "Datadog API key. Unset: flushed payloads go to a local file sink instead of the intake.",
    ),
    secret(
        "app_key",
        "Datadog application key (not used by the core; kept for completeness).",
    ),
    key(
        "site",
        Kind::Str,
        Default::Str("datadoghq.com"),
        "Datadog site the intake endpoints are derived from.",
    ),
    key(
        "dd_url",
        Kind::Str,
        Default::Unset,
        "Overrides the metrics intake URL derived from `site`.",
    ),
    key(
        "proxy.https",
        Kind::Str,
        Default::Unset,
        "HTTP proxy (`http://[user:password@]host:port`) that https intake connections are tunnelled through (CONNECT).",
    )
    .or_env(&["HTTPS_PROXY", "https_proxy"]),
    key(
        "proxy.http",
        Kind::Str,
        Default::Unset,
        "HTTP proxy for http:// intake URLs, tunnelled the same way.",
    )
    .or_env(&["HTTP_PROXY", "http_proxy"]),
    key(
        "proxy.no_proxy",
        Kind::StrList,
        Default::EmptyList,
        "Hosts or domains reached without the proxy (`*` for all).",
    )
    .or_env(&["NO_PROXY", "no_proxy"]),
    key(
        "hostname",
        Kind::Str,
        Default::Unset,
        "Hostname reported by dogd. Unset: the OS hostname (FQDN when resolvable).",
    ),
    key(
        "tags",
        Kind::StrList,
        Default::EmptyList,
        "Host tags added to everything dogd sends.",
    ),
    key(
        "env",
        Kind::Str,
        Default::Unset,
        "The `env` tag added to everything dogd sends.",
    ),
    key(
        "run_path",
        Kind::Path,
        Default::StateDir,
        "State directory (auth token, IPC certificate, local sink). Default: a per-user directory.",
    ),
    key(
        "shutdown_timeout",
        Kind::Seconds,
        Default::Float(30.0),
        "Deadline, in seconds, for each component to stop on shutdown.",
    ),
    // Logging.
    key(
        "log_level",
        Kind::LogLevel,
        Default::Str("info"),
        "Minimum level of log lines.",
    ),
    key(
        "log_file",
        Kind::Path,
        Default::Unset,
        "Also write logs to this file (appended).",
    ),
    key(
        "log_to_console",
        Kind::Bool,
        Default::Bool(true),
        "Write logs to stderr.",
    ),
    // CMD API server and IPC.
    key(
        "cmd_host",
        Kind::Str,
        Default::Str("127.0.0.1"),
        "Host the CMD API server listens on (must be a local address).",
    ),
    key(
        "ipc_address",
        Kind::Str,
        Default::Unset,
        "Deprecated alias of `cmd_host`; when set it wins, with a warning.",
    ),
    key(
        "cmd_port",
        PORT,
        Default::Int(5001),
        "Port of the CMD API server (0 picks a free port).",
    ),
    key(
        "agent_ipc.host",
        Kind::Str,
        Default::Str("localhost"),
        "Host of the IPC config server.",
    ),
    key(
        "agent_ipc.port",
        PORT,
        Default::Int(0),
        "Port of the IPC config server; 0 disables it.",
    ),
    key(
        "agent_ipc.config_refresh_interval",
        Kind::Seconds,
        Default::Float(0.0),
        "How often, in seconds, clients poll the IPC config server; 0 disables polling.",
    ),
    key(
        "server_timeout",
        Kind::Seconds,
        Default::Float(30.0),
        "Deadline, in seconds, of each non-streaming API request.",
    ),
    key(
        "auth_token_file_path",
        Kind::Path,
        Default::Unset,
        "IPC auth token file. Unset: `<run_path>/auth_token`.",
    ),
    key(
        "ipc_cert_file_path",
        Kind::Path,
        Default::Unset,
        "IPC certificate + key PEM file. Unset: `<run_path>/ipc_cert.pem`.",
    ),
    // Secrets.
    key(
        "secret_backend_command",
        Kind::Path,
        Default::Unset,
        "Executable resolving ENC[handle] values (must be owned by the user, not group/other writable).",
    ),
    key(
        "secret_backend_arguments",
        Kind::StrList,
        Default::EmptyList,
        "Arguments passed to secret_backend_command.",
    ),
    key(
        "secret_backend_timeout",
        Kind::Seconds,
        Default::Float(30.0),
        "Seconds secret_backend_command may run.",
    ),
    key(
        "secret_backend_output_max_size",
        Kind::Int {
            min: 1,
            max: 1 << 30,
        },
        Default::Int(1024 * 1024),
        "Largest output, in bytes, accepted from secret_backend_command.",
    ),
    // Internal telemetry.
    key(
        "telemetry.port",
        PORT,
        Default::Int(0),
        "Port of the plain-HTTP /telemetry endpoint (Prometheus text, no auth, localhost only); 0 disables it.",
    ),
    // DogStatsD.
    key(
        "dogstatsd_port",
        PORT,
        Default::Int(8125),
        "DogStatsD UDP port; 0 disables UDP.",
    ),
    // Aggregation.
    key(
        "histogram_aggregates",
        Kind::StrList,
        Default::List(&["max", "median", "avg", "count"]),
        "Aggregates reported for histograms: max, min, median, avg, sum, count.",
    ),
    key(
        "histogram_percentiles",
        Kind::StrList,
        Default::List(&["0.95"]),
        "Percentiles reported for histograms, as fractions.",
    ),
    key(
        "dogstatsd_expiry_seconds",
        Kind::Seconds,
        Default::Float(300.0),
        "How long an idle counter keeps reporting 0.",
    ),
    key(
        "dogstatsd_context_expiry_seconds",
        Kind::Seconds,
        Default::Float(20.0),
        "How long an idle context is remembered by the parser's interner.",
    ),
    key(
        "aggregator_buffer_size",
        Kind::Int {
            min: 1,
            max: 1 << 20,
        },
        Default::Int(100),
        "Sample batches queued for the aggregator before DogStatsD waits.",
    ),
    key(
        "expected_tags_duration",
        Kind::Seconds,
        Default::Float(0.0),
        "For this long after start, host tags are added to every series and sketch.",
    ),
    key(
        "dogstatsd_no_aggregation_pipeline_batch_size",
        Kind::Int {
            min: 1,
            max: 1 << 20,
        },
        Default::Int(2048),
        "Timestamped samples sent as soon as this many are waiting.",
    ),
    key(
        "use_dogstatsd",
        Kind::Bool,
        Default::Bool(true),
        "Run the DogStatsD server.",
    ),
    key(
        "bind_host",
        Kind::Str,
        Default::Str("localhost"),
        "Host the DogStatsD UDP listener binds when non-local traffic is off.",
    ),
    key(
        "dogstatsd_non_local_traffic",
        Kind::Bool,
        Default::Bool(false),
        "Listen for DogStatsD UDP on all interfaces.",
    ),
    key(
        "dogstatsd_buffer_size",
        Kind::Int {
            min: 64,
            max: 65_536,
        },
        Default::Int(8192),
        "Largest DogStatsD packet (and stream frame) read, in bytes.",
    ),
    key(
        "dogstatsd_so_rcvbuf",
        Kind::Int {
            min: 0,
            max: 1 << 30,
        },
        Default::Int(0),
        "SO_RCVBUF of the DogStatsD sockets; 0 keeps the OS default.",
    ),
    key(
        "dogstatsd_socket",
        Kind::Path,
        Default::Unset,
        "Unix datagram socket path for DogStatsD; unset disables it.",
    ),
    key(
        "dogstatsd_stream_socket",
        Kind::Path,
        Default::Unset,
        "Unix stream socket path for DogStatsD (length-prefixed frames); unset disables it.",
    ),
    key(
        "dogstatsd_eol_required",
        Kind::StrList,
        Default::EmptyList,
        "Transports (udp, uds) whose messages must end with a newline.",
    ),
    key(
        "dogstatsd_queue_size",
        Kind::Int {
            min: 1,
            max: 1 << 20,
        },
        Default::Int(1024),
        "Packet batches buffered between the listeners and the parsers; beyond it packets are dropped and counted.",
    ),
    key(
        "dogstatsd_workers_count",
        Kind::Int { min: 0, max: 256 },
        Default::Int(0),
        "Parser workers; 0 picks one per core less one (at least one).",
    ),
    key(
        "dogstatsd_origin_detection",
        Kind::Bool,
        Default::Bool(false),
        "Detect the sender's container on Unix sockets (SO_PASSCRED).",
    ),
    key(
        "dogstatsd_origin_detection_client",
        Kind::Bool,
        Default::Bool(false),
        "Honour the client-sent c:, e: and card: fields.",
    ),
    key(
        "dogstatsd_origin_optout_enabled",
        Kind::Bool,
        Default::Bool(true),
        "card:none disables origin tagging for that message.",
    ),
    key(
        "dogstatsd_entity_id_precedence",
        Kind::Bool,
        Default::Bool(false),
        "A dd.internal.entity_id tag wins over the socket origin.",
    ),
    key(
        "dogstatsd_tag_cardinality",
        Kind::Str,
        Default::Str("low"),
        "Cardinality of origin tags: low, orchestrator or high.",
    ),
    key(
        "dogstatsd_tags",
        Kind::StrList,
        Default::EmptyList,
        "Tags added to every DogStatsD metric, event and service check.",
    ),
    key(
        "dogstatsd_mapper_profiles",
        Kind::Any,
        Default::Unset,
        "Metric-name mapping profiles.",
    ),
    key(
        "dogstatsd_mapper_cache_size",
        Kind::Int {
            min: 0,
            max: 1 << 24,
        },
        Default::Int(1000),
        "Mapper results cached.",
    ),
    key(
        "dogstatsd_disable_verbose_logs",
        Kind::Bool,
        Default::Bool(false),
        "Log DogStatsD parse errors at debug instead of error level.",
    ),
    key(
        "dogstatsd_metrics_stats_enable",
        Kind::Bool,
        Default::Bool(false),
        "Keep per-metric counts for /agent/dogstatsd-stats (also a runtime setting).",
    ),
    key(
        "dogstatsd_no_aggregation_pipeline",
        Kind::Bool,
        Default::Bool(true),
        "Honour T<timestamp> fields and send such samples unaggregated.",
    ),
    key(
        "statsd_metric_namespace",
        Kind::Str,
        Default::Unset,
        "Prefix added to every metric name.",
    ),
    key(
        "statsd_metric_namespace_blacklist",
        Kind::StrList,
        Default::Unset,
        "Metric-name prefixes exempt from the namespace (unset: the agent's list).",
    ),
    key(
        "statsd_metric_blocklist",
        Kind::StrList,
        Default::EmptyList,
        "Metric names dropped.",
    ),
    key(
        "statsd_metric_blocklist_match_prefix",
        Kind::Bool,
        Default::Bool(false),
        "Blocklist entries match as prefixes.",
    ),
    key(
        "dogstatsd_context_limiter.limit",
        Kind::Int {
            min: 0,
            max: 1 << 40,
        },
        Default::Int(0),
        "DogStatsD contexts allowed in the aggregator, split equally between senders; 0: no limit.",
    ),
    key(
        "dogstatsd_context_limiter.key_tag_name",
        Kind::Str,
        Default::Str("pod_name"),
        "Tag whose value identifies a sender for the context limiter.",
    ),
    key(
        "dogstatsd_context_limiter.entry_timeout",
        Kind::Int {
            min: 0,
            max: 1 << 20,
        },
        Default::Int(1),
        "Flushes a sender without contexts keeps its share of the context limit.",
    ),
    key(
        "forwarder_timeout",
        Kind::Seconds,
        Default::Int(20),
        "Deadline, in seconds, of each request to the intake (connection included).",
    ),
    key(
        "forwarder_retry_queue_payloads_max_size",
        Kind::Int {
            min: 0,
            max: 1 << 40,
        },
        Default::Int(15 * 1024 * 1024),
        "Bytes of payloads held in memory for retry; beyond it the oldest move to disk or are dropped.",
    ),
    key(
        "forwarder_backoff_base",
        Kind::Seconds,
        Default::Int(2),
        "First retry backoff step, in seconds.",
    ),
    key(
        "forwarder_backoff_factor",
        Kind::Float { min: 0.0, max: 1e6 },
        Default::Float(2.0),
        "Divisor of the randomized backoff's lower bound (values below 2 act as 2).",
    ),
    key(
        "forwarder_backoff_max",
        Kind::Seconds,
        Default::Int(64),
        "Longest retry backoff, in seconds.",
    ),
    key(
        "forwarder_recovery_interval",
        Kind::Int {
            min: 1,
            max: 1 << 20,
        },
        Default::Int(2),
        "Backoff error steps forgiven by each successful request.",
    ),
    key(
        "forwarder_recovery_reset",
        Kind::Bool,
        Default::Bool(false),
        "Forget every backoff error step on the first success.",
    ),
    key(
        "forwarder_apikey_validation_interval",
        Kind::Int {
            min: 1,
            max: 60 * 24 * 365,
        },
        Default::Int(60),
        "Minutes between checks of the API key against the intake's /api/v1/validate.",
    ),
    key(
        "forwarder_max_concurrent_requests",
        Kind::Int {
            min: 1,
            max: 1 << 16,
        },
        Default::Int(10),
        "Requests to the intake in flight at once.",
    ),
    key(
        "forwarder_storage_max_size_in_bytes",
        Kind::Int {
            min: 0,
            max: 1 << 50,
        },
        Default::Int(0),
        "Bytes of undeliverable payloads kept on disk for retry (also across restarts); 0 disables the disk queue.",
    ),
    key(
        "forwarder_storage_path",
        Kind::Path,
        Default::Unset,
        "Directory of the disk retry queue. Unset: `<run_path>/transactions_to_retry`.",
    ),
    key(
        "forwarder_outdated_file_in_days",
        Kind::Int { min: 1, max: 36500 },
        Default::Int(10),
        "Disk retry queue files older than this many days are removed.",
    ),
    key(
        "serializer_compressor_kind",
        Kind::Str,
        Default::Str("zstd"),
        "Payload compression: zstd or zlib.",
    ),
    key(
        "serializer_zstd_compressor_level",
        Kind::Int { min: -7, max: 22 },
        Default::Int(1),
        "zstd compression level.",
    ),
    key(
        "serializer_max_payload_size",
        Kind::Int {
            min: 1024,
            max: 1 << 30,
        },
        Default::Int(2_621_440),
        "Largest compressed sketch, event or service-check payload, in bytes.",
    ),
    key(
        "serializer_max_uncompressed_payload_size",
        Kind::Int {
            min: 1024,
            max: 1 << 30,
        },
        Default::Int(4_194_304),
        "Largest uncompressed sketch, event or service-check payload, in bytes.",
    ),
    key(
        "serializer_max_series_payload_size",
        Kind::Int {
            min: 1024,
            max: 1 << 30,
        },
        Default::Int(512_000),
        "Largest compressed series payload, in bytes.",
    ),
    key(
        "serializer_max_series_uncompressed_payload_size",
        Kind::Int {
            min: 1024,
            max: 1 << 30,
        },
        Default::Int(5_242_880),
        "Largest uncompressed series payload, in bytes.",
    ),
    key(
        "serializer_max_series_points_per_payload",
        Kind::Int {
            min: 1,
            max: 1 << 30,
        },
        Default::Int(10_000),
        "Most points in one series payload.",
    ),
];

/// Looks a declared key up by name.
pub fn find(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|spec| spec.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_joins_nested_keys_with_underscores() {
        let port = find("agent_ipc.port").expect("declared");
        assert_eq!(port.env_var(), "DD_AGENT_IPC_PORT");
        assert_eq!(find("cmd_port").expect("declared").env_var(), "DD_CMD_PORT");
    }

    #[test]
    fn keys_are_declared_once() {
        let mut names: Vec<&str> = KEYS.iter().map(|spec| spec.key).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
