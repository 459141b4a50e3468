//! The DogStatsD server's settings, read from the configuration in one place.

use std::path::PathBuf;

use dogd_config::{Config, ConfigError};

/// How DogStatsD listens and parses.
#[derive(Clone, Debug)]
pub struct DogStatsdConfig {
    /// `use_dogstatsd` (default true).
    pub enabled: bool,
    /// `dogstatsd_port` (default 8125; 0 disables UDP).
    pub udp_port: u16,
    /// `bind_host` (default `localhost`), or every interface with `dogstatsd_non_local_traffic`.
    pub udp_host: String,
    /// `dogstatsd_buffer_size` (default 8192): largest packet or stream frame read.
    pub buffer_size: usize,
    /// `dogstatsd_so_rcvbuf` (default 0 = OS default).
    pub so_rcvbuf: usize,
    /// `dogstatsd_socket` (unset: no Unix datagram listener).
    pub socket: Option<PathBuf>,
    /// `dogstatsd_stream_socket` (unset: no Unix stream listener).
    pub stream_socket: Option<PathBuf>,
    /// `dogstatsd_eol_required` contains `udp`.
    pub eol_required_udp: bool,
    /// `dogstatsd_eol_required` contains `uds`.
    pub eol_required_uds: bool,
    /// `dogstatsd_queue_size` (default 1024): packet batches between listeners and parsers.
    pub queue_size: usize,
    /// `dogstatsd_workers_count` (default 0 = one per core).
    pub workers: usize,
    /// `dogstatsd_origin_detection` (default false).
    pub origin_detection: bool,
    /// `dogstatsd_origin_detection_client` (default false).
    pub origin_detection_client: bool,
    /// `dogstatsd_origin_optout_enabled` (default true).
    pub origin_optout: bool,
    /// `dogstatsd_entity_id_precedence` (default false).
    pub entity_id_precedence: bool,
    /// `dogstatsd_tags` (default none).
    pub extra_tags: Vec<String>,
    /// `dogstatsd_mapper_profiles` (default none).
    pub mapper_profiles: Option<serde_json::Value>,
    /// `dogstatsd_mapper_cache_size` (default 1000).
    pub mapper_cache_size: usize,
    /// `dogstatsd_disable_verbose_logs` (default false).
    pub quiet_parse_errors: bool,
    /// `dogstatsd_metrics_stats_enable` (default false).
    pub metrics_stats: bool,
    /// `dogstatsd_no_aggregation_pipeline` (default true).
    pub honor_timestamps: bool,
    /// `statsd_metric_namespace` (default none).
    pub namespace: Option<String>,
    /// `statsd_metric_namespace_blacklist` (default: the agent's list).
    pub namespace_blacklist: Option<Vec<String>>,
    /// `statsd_metric_blocklist` (default none).
    pub blocklist: Vec<String>,
    /// `statsd_metric_blocklist_match_prefix` (default false).
    pub blocklist_match_prefix: bool,
}

fn to_usize(value: i64) -> usize {
    usize::try_from(value).unwrap_or(0)
}

impl DogStatsdConfig {
    /// Reads the DogStatsD settings.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let eol = config.get_string_list("dogstatsd_eol_required")?;
        let non_local = config.get_bool("dogstatsd_non_local_traffic")?;
        let udp_host = if non_local {
            "0.0.0.0".to_owned()
        } else {
            config
                .get_string("bind_host")?
                .unwrap_or_else(|| "localhost".to_owned())
        };
        let namespace_blacklist = if config.is_set("statsd_metric_namespace_blacklist") {
            Some(config.get_string_list("statsd_metric_namespace_blacklist")?)
        } else {
            None
        };
        Ok(Self {
            enabled: config.get_bool("use_dogstatsd")?,
            udp_port: config.get_port("dogstatsd_port")?,
            udp_host,
            buffer_size: to_usize(config.get_int("dogstatsd_buffer_size")?),
            so_rcvbuf: to_usize(config.get_int("dogstatsd_so_rcvbuf")?),
            socket: config.get_path("dogstatsd_socket")?,
            stream_socket: config.get_path("dogstatsd_stream_socket")?,
            eol_required_udp: eol.iter().any(|t| t.eq_ignore_ascii_case("udp")),
            eol_required_uds: eol.iter().any(|t| t.eq_ignore_ascii_case("uds")),
            queue_size: to_usize(config.get_int("dogstatsd_queue_size")?).max(1),
            workers: to_usize(config.get_int("dogstatsd_workers_count")?),
            origin_detection: config.get_bool("dogstatsd_origin_detection")?,
            origin_detection_client: config.get_bool("dogstatsd_origin_detection_client")?,
            origin_optout: config.get_bool("dogstatsd_origin_optout_enabled")?,
            entity_id_precedence: config.get_bool("dogstatsd_entity_id_precedence")?,
            extra_tags: config.get_string_list("dogstatsd_tags")?,
            mapper_profiles: config
                .get("dogstatsd_mapper_profiles")
                .map(|setting| setting.value)
                .filter(|value| !value.is_null()),
            mapper_cache_size: to_usize(config.get_int("dogstatsd_mapper_cache_size")?),
            quiet_parse_errors: config.get_bool("dogstatsd_disable_verbose_logs")?,
            metrics_stats: config.get_bool("dogstatsd_metrics_stats_enable")?,
            honor_timestamps: config.get_bool("dogstatsd_no_aggregation_pipeline")?,
            namespace: config.get_string("statsd_metric_namespace")?,
            namespace_blacklist,
            blocklist: config.get_string_list("statsd_metric_blocklist")?,
            blocklist_match_prefix: config.get_bool("statsd_metric_blocklist_match_prefix")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_agent() {
        let config = Config::load(None, &dogd_config::Environment::default()).expect("config");
        let dsd = DogStatsdConfig::from_config(&config).expect("dsd");
        assert_eq!(dsd.buffer_size, 8192);
        assert_eq!(dsd.udp_port, 8125);
        assert_eq!(dsd.udp_host, "localhost");
        assert_eq!(dsd.queue_size, 1024);
        assert!(dsd.enabled && dsd.honor_timestamps && !dsd.origin_detection);
    }
}
