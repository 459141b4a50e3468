//! The forwarder's and serializer's settings, read from the configuration in one place so an
//! invalid value is reported (naming the key and where it came from) before anything starts.

use std::path::Path;
use std::time::Duration;

use dogd_config::{Config, ConfigError};

use crate::serialize::{Compression, Limits, Serializer};
use crate::transport::{ForwarderConfig, ForwarderError, Proxy, ProxyConfig, StorageConfig};

impl ForwarderConfig {
    /// The forwarder's settings, or `None` when no `api_key` is set (flushes then go to the local
    /// sink). `run_path` holds the disk queue unless `forwarder_storage_path` is set; the drain on
    /// stop is kept under half of `shutdown_timeout` so the disk write still fits in it.
    ///
    /// # Errors
    ///
    /// A value of the wrong type or out of range, or an intake URL (`site`, `dd_url`) that is not
    /// a usable http(s) URL.
    pub fn from_config(
        config: &Config,
        run_path: &Path,
        agent_version: &str,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(api_key) = config.get_string("api_key")? else {
            return Ok(None);
        };
        if api_key.trim().is_empty() {
            return Ok(None);
        }
        let site = config.get_string("site")?.unwrap_or_default();
        let dd_url = config.get_string("dd_url")?;
        let base_url = Self::base_url_for(&site, dd_url.as_deref(), agent_version)
            .map_err(|error| to_config_error(config, error))?;
        let mut forwarder = Self::new(base_url, api_key, agent_version);
        forwarder.timeout = config.get_duration("forwarder_timeout")?;
        forwarder.retry_queue_max_bytes = count(config, "forwarder_retry_queue_payloads_max_size")?;
        forwarder.backoff_base = config.get_duration("forwarder_backoff_base")?;
        forwarder.backoff_factor = config.get_float("forwarder_backoff_factor")?;
        forwarder.backoff_max = config.get_duration("forwarder_backoff_max")?;
        forwarder.recovery_interval =
            u32::try_from(config.get_int("forwarder_recovery_interval")?).unwrap_or(u32::MAX);
        forwarder.recovery_reset = config.get_bool("forwarder_recovery_reset")?;
        forwarder.max_concurrent_requests = count(config, "forwarder_max_concurrent_requests")?;
        forwarder.proxy = proxy_config(config)?;
        let minutes = config.get_int("forwarder_apikey_validation_interval")?;
        forwarder.api_key_validation_interval =
            Duration::from_secs(u64::try_from(minutes).unwrap_or(60).saturating_mul(60));
        let storage_path = config
            .get_path("forwarder_storage_path")?
            .unwrap_or_else(|| StorageConfig::default_path(run_path));
        let storage_bytes =
            u64::try_from(config.get_int("forwarder_storage_max_size_in_bytes")?).unwrap_or(0);
        forwarder.storage = StorageConfig::new(storage_path, storage_bytes).map(|mut storage| {
            let days = config
                .get_int("forwarder_outdated_file_in_days")
                .unwrap_or(10);
            storage.max_age =
                Duration::from_secs(u64::try_from(days).unwrap_or(10).saturating_mul(86_400));
            storage
        });
        let shutdown = config.get_duration("shutdown_timeout")?;
        forwarder.drain_timeout = Self::DEFAULT_DRAIN_TIMEOUT.min(shutdown / 2);
        forwarder
            .validate()
            .map_err(|error| to_config_error(config, error))?;
        Ok(Some(forwarder))
    }
}

/// `proxy.https`, `proxy.http` and `proxy.no_proxy`; an empty string is no proxy.
fn proxy_config(config: &Config) -> Result<ProxyConfig, ConfigError> {
    let proxy = |key: &str| -> Result<Option<Proxy>, ConfigError> {
        match config.get_string(key)? {
            Some(raw) if !raw.trim().is_empty() => Proxy::parse(raw.trim())
                .map(Some)
                .map_err(|reason| config.invalid_value(key, without_credentials(&raw), reason)),
            _ => Ok(None),
        }
    };
    Ok(ProxyConfig {
        https: proxy("proxy.https")?,
        http: proxy("proxy.http")?,
        // `NO_PROXY` separates with commas, `DD_PROXY_NO_PROXY` and YAML lists do not.
        no_proxy: config
            .get_string_list("proxy.no_proxy")?
            .iter()
            .flat_map(|entry| entry.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// A proxy URL for messages: the password (and user) never appear in an error.
fn without_credentials(raw: &str) -> String {
    match raw.rsplit_once('@') {
        Some((before, address)) => {
            let scheme = before.split_once("://").map_or("", |(scheme, _)| scheme);
            if scheme.is_empty() {
                format!("***@{address}")
            } else {
                format!("{scheme}://***@{address}")
            }
        }
        None => raw.to_owned(),
    }
}

impl Serializer {
    /// The serializer's settings (`serializer_compressor_kind`, `serializer_zstd_compressor_level`,
    /// `serializer_max_*`); `hostname` goes in the events payload.
    ///
    /// # Errors
    ///
    /// An unknown compressor kind, or a value of the wrong type or out of range.
    pub fn from_config(config: &Config, hostname: &str) -> Result<Self, ConfigError> {
        let kind = config
            .get_string("serializer_compressor_kind")?
            .unwrap_or_else(|| "zstd".to_owned());
        let level = i32::try_from(config.get_int("serializer_zstd_compressor_level")?).unwrap_or(1);
        let compression = Compression::from_settings(&kind, level).ok_or_else(|| {
            config.invalid_value(
                "serializer_compressor_kind",
                format!("{kind:?}"),
                "use zstd or zlib",
            )
        })?;
        Ok(Self {
            compression,
            limits: Limits {
                series_compressed: count(config, "serializer_max_series_payload_size")?,
                series_uncompressed: count(
                    config,
                    "serializer_max_series_uncompressed_payload_size",
                )?,
                series_points: count(config, "serializer_max_series_points_per_payload")?,
                other_compressed: count(config, "serializer_max_payload_size")?,
                other_uncompressed: count(config, "serializer_max_uncompressed_payload_size")?,
            },
            hostname: hostname.to_owned(),
        })
    }
}

/// A size or count key (declared with a non-negative range).
fn count(config: &Config, key: &str) -> Result<usize, ConfigError> {
    let value = config.get_int(key)?;
    usize::try_from(value).map_err(|_| config.invalid_value(key, value, "must not be negative"))
}

fn to_config_error(config: &Config, error: ForwarderError) -> ConfigError {
    match error {
        ForwarderError::InvalidUrl { key, value, reason } => {
            config.invalid_value(key, format!("{value:?}"), reason)
        }
        ForwarderError::InvalidSetting { key, reason } => {
            let value = config
                .get(key)
                .map_or_else(String::new, |setting| setting.value.to_string());
            config.invalid_value(key, value, reason)
        }
        other => config.invalid_value("api_key", "(redacted)", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dogd_config::Environment;

    fn parse(yaml: &str) -> Config {
        Config::from_yaml(Path::new("datadog.yaml"), yaml, &Environment::default())
            .expect("valid config")
    }

    #[test]
    fn no_api_key_means_no_forwarder() {
        let config = parse("site: datadoghq.eu\n");
        let forwarder = ForwarderConfig::from_config(&config, Path::new("/run"), "7.1.2");
        assert!(matches!(forwarder, Ok(None)));
    }

    #[test]
    fn forwarder_settings_follow_the_agent_keys() {
        let config = parse(
            "api_key: abcdefabcdefabcdefabcdefabcdef12\n\
             dd_url: http://127.0.0.1:9000\n\
             forwarder_timeout: 3\n\
             forwarder_backoff_factor: 3.5\n\
             forwarder_storage_max_size_in_bytes: 1000\n\
             shutdown_timeout: 4\n",
        );
        let forwarder = ForwarderConfig::from_config(&config, Path::new("/run"), "7.1.2")
            .expect("valid")
            .expect("an api key is set");
        assert_eq!(forwarder.base_url.to_string(), "http://127.0.0.1:9000/");
        assert_eq!(forwarder.timeout, Duration::from_secs(3));
        assert!((forwarder.backoff_factor - 3.5).abs() < f64::EPSILON);
        assert_eq!(forwarder.drain_timeout, Duration::from_secs(2));
        let storage = forwarder.storage.expect("disk queue enabled");
        assert_eq!(storage.path, Path::new("/run/transactions_to_retry"));
        assert_eq!(storage.max_bytes, 1000);
    }

    #[test]
    fn rejects_a_dd_url_without_scheme_naming_the_key() {
        let config = parse("api_key: abcdefabcdefabcdefabcdefabcdef12\ndd_url: intake.local\n");
        let error = ForwarderConfig::from_config(&config, Path::new("/run"), "7.1.2")
            .expect_err("no scheme")
            .to_string();
        assert!(error.contains("dd_url"), "{error}");
        assert!(error.contains("datadog.yaml"), "{error}");
    }

    #[test]
    fn proxy_settings_come_from_the_agent_keys_and_environment() {
        let env = Environment::from_pairs([("DD_PROXY_HTTPS", "http://user:secret@proxy:3128")]);
        let config = Config::from_yaml(
            Path::new("datadog.yaml"),
            "api_key: abcdefabcdefabcdefabcdefabcdef12\nproxy:\n  no_proxy: [localhost, .corp]\n",
            &env,
        )
        .expect("valid config");
        let forwarder = ForwarderConfig::from_config(&config, Path::new("/run"), "7.1.2")
            .expect("valid")
            .expect("an api key is set");
        let https = forwarder
            .proxy
            .https
            .expect("proxy.https from DD_PROXY_HTTPS");
        assert_eq!(https.to_string(), "http://proxy:3128");
        assert_eq!(forwarder.proxy.http, None);
        assert_eq!(forwarder.proxy.no_proxy, ["localhost", ".corp"]);
    }

    #[test]
    fn standard_proxy_variables_apply_when_the_dd_ones_are_unset() {
        let yaml =
            "api_key: abcdefabcdefabcdefabcdefabcdef12\nproxy:\n  https: http://from-file:1\n";
        let load = |pairs: &[(&str, &str)]| {
            let env = Environment::from_pairs(pairs.iter().copied());
            let config = Config::from_yaml(Path::new("datadog.yaml"), yaml, &env).expect("valid");
            ForwarderConfig::from_config(&config, Path::new("/run"), "7.1.2")
                .expect("valid")
                .expect("an api key is set")
                .proxy
        };
        let standard = load(&[
            ("HTTPS_PROXY", "http://corp-proxy:3128"),
            ("NO_PROXY", "localhost,.internal"),
        ]);
        assert_eq!(
            standard.https.map(|proxy| proxy.to_string()).as_deref(),
            Some("http://corp-proxy:3128")
        );
        assert_eq!(standard.no_proxy, ["localhost", ".internal"]);
        let dd_wins = load(&[
            ("HTTPS_PROXY", "http://corp-proxy:3128"),
            ("DD_PROXY_HTTPS", "http://dd-proxy:8080"),
        ]);
        assert_eq!(
            dd_wins.https.map(|proxy| proxy.to_string()).as_deref(),
            Some("http://dd-proxy:8080")
        );
        // An empty DD_ variable means no proxy, whatever the file and the standard variables say.
        let disabled = load(&[
            ("HTTPS_PROXY", "http://corp-proxy:3128"),
            ("DD_PROXY_HTTPS", ""),
        ]);
        assert_eq!(disabled.https, None);
        let file_only = load(&[]);
        assert_eq!(
            file_only.https.map(|proxy| proxy.to_string()).as_deref(),
            Some("http://from-file:1")
        );
    }

    #[test]
    fn rejects_an_unusable_proxy_without_printing_its_password() {
        let config = parse(
            "api_key: abcdefabcdefabcdefabcdefabcdef12\nproxy:\n  https: socks5://user:secret@proxy:1080\n",
        );
        let error = ForwarderConfig::from_config(&config, Path::new("/run"), "7.1.2")
            .expect_err("socks is not supported")
            .to_string();
        assert!(error.contains("proxy.https"), "{error}");
        assert!(error.contains("scheme"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn rejects_an_unknown_compressor_kind() {
        let config = parse("serializer_compressor_kind: lz4\n");
        let error = Serializer::from_config(&config, "h").expect_err("unknown kind");
        assert!(
            error.to_string().contains("serializer_compressor_kind"),
            "{error}"
        );
        let zlib = parse("serializer_compressor_kind: zlib\n");
        let zlib = Serializer::from_config(&zlib, "h").expect("zlib is known");
        assert_eq!(zlib.compression, Compression::Zlib);
    }
}
