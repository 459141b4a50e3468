//! The forwarder's settings and the site → intake URL rule.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

use super::error::ForwarderError;
use super::proxy::ProxyConfig;

/// The forwarder's settings. [`ForwarderConfig::new`] fills every tunable with the agent's default.
#[derive(Clone)]
pub struct ForwarderConfig {
    /// The intake base URL, from `dd_url` or `site` ([`ForwarderConfig::base_url_for`]). Endpoint
    /// paths are appended to it.
    pub base_url: Uri,
    /// `api_key`, sent as `DD-API-KEY`.
    pub api_key: String,
    /// The version reported in `DD-Agent-Version` and `User-Agent: datadog-agent/<version>`.
    pub agent_version: String,
    /// Per-request timeout, connection included (`forwarder_timeout`, default 20 s).
    pub timeout: Duration,
    /// Bytes of payload the queue holds before the oldest transactions are dropped (or moved to
    /// disk) (`forwarder_retry_queue_payloads_max_size`, default 15 MiB).
    pub retry_queue_max_bytes: usize,
    /// First backoff step (`forwarder_backoff_base`, default 2 s).
    pub backoff_base: Duration,
    /// Lower bound divisor of the randomized backoff (`forwarder_backoff_factor`, default 2; values
    /// below 2 are raised to 2 as the agent does).
    pub backoff_factor: f64,
    /// Longest backoff (`forwarder_backoff_max`, default 64 s).
    pub backoff_max: Duration,
    /// Error steps forgiven by each success after a backoff (`forwarder_recovery_interval`, default 2).
    pub recovery_interval: u32,
    /// Forget every error on the first success (`forwarder_recovery_reset`, default false).
    pub recovery_reset: bool,
    /// Requests in flight at once (`forwarder_max_concurrent_requests`, default 10).
    pub max_concurrent_requests: usize,
    /// The disk queue; `None` disables it (the default, as `forwarder_storage_max_size_in_bytes: 0`).
    pub storage: Option<StorageConfig>,
    /// Check the API key against `/api/v1/validate` on start and then periodically (default
    /// true).
    pub validate_api_key: bool,
    /// Time between those checks (`forwarder_apikey_validation_interval`, minutes, default 60).
    pub api_key_validation_interval: Duration,
    /// Proxies to the intake (`proxy.https`, `proxy.http`, `proxy.no_proxy`; default none).
    pub proxy: ProxyConfig,
    /// How long stop keeps sending queued transactions before writing the rest to disk (default
    /// 5 s). Keep it well under the supervisor's `shutdown_timeout`.
    pub drain_timeout: Duration,
}

impl std::fmt::Debug for ForwarderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwarderConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &dogd_config::redact(&self.api_key))
            .field("agent_version", &self.agent_version)
            .field("timeout", &self.timeout)
            .field("retry_queue_max_bytes", &self.retry_queue_max_bytes)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_factor", &self.backoff_factor)
            .field("backoff_max", &self.backoff_max)
            .field("recovery_interval", &self.recovery_interval)
            .field("recovery_reset", &self.recovery_reset)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("storage", &self.storage)
            .field("validate_api_key", &self.validate_api_key)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

/// The disk queue's settings.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// The directory holding queue files (`forwarder_storage_path`; the agent's default is
    /// `<run_path>/transactions_to_retry`). Created with mode 0700.
    pub path: PathBuf,
    /// Bytes of queue files kept; the oldest files are removed to make room
    /// (`forwarder_storage_max_size_in_bytes`; 0 disables the disk queue).
    pub max_bytes: u64,
    /// Queue files older than this are removed on start (`forwarder_outdated_file_in_days`,
    /// default 10 days): the intake would not accept such old points anyway.
    pub max_age: Duration,
}

impl StorageConfig {
    /// The default `max_age` (10 days).
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10 * 24 * 3600);

    /// The settings for `path` and `max_bytes`, or `None` when `max_bytes` is 0 (disabled, as the
    /// agent reads `forwarder_storage_max_size_in_bytes: 0`).
    pub fn new(path: impl Into<PathBuf>, max_bytes: u64) -> Option<Self> {
        (max_bytes > 0).then(|| Self {
            path: path.into(),
            max_bytes,
            max_age: Self::DEFAULT_MAX_AGE,
        })
    }

    /// The agent's default directory under `run_path`.
    pub fn default_path(run_path: &std::path::Path) -> PathBuf {
        run_path.join("transactions_to_retry")
    }
}

impl ForwarderConfig {
    /// Default `forwarder_apikey_validation_interval` (60 minutes).
    pub const DEFAULT_API_KEY_VALIDATION_INTERVAL: Duration = Duration::from_secs(60 * 60);
    /// Default `forwarder_timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
    /// Default `forwarder_retry_queue_payloads_max_size`.
    pub const DEFAULT_RETRY_QUEUE_MAX_BYTES: usize = 15 * 1024 * 1024;
    /// Default `forwarder_backoff_base`.
    pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(2);
    /// Default `forwarder_backoff_factor`.
    pub const DEFAULT_BACKOFF_FACTOR: f64 = 2.0;
    /// Default `forwarder_backoff_max`.
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(64);
    /// Default `forwarder_recovery_interval`.
    pub const DEFAULT_RECOVERY_INTERVAL: u32 = 2;
    /// Default `forwarder_max_concurrent_requests`.
    pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 10;
    /// Default drain time on stop.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

    /// Settings with the agent's defaults for everything but the URL, key and version.
    pub fn new(
        base_url: Uri,
        api_key: impl Into<String>,
        agent_version: impl Into<String>,
    ) -> Self {
        Self {
            base_url,
            api_key: api_key.into(),
            agent_version: agent_version.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            retry_queue_max_bytes: Self::DEFAULT_RETRY_QUEUE_MAX_BYTES,
            backoff_base: Self::DEFAULT_BACKOFF_BASE,
            backoff_factor: Self::DEFAULT_BACKOFF_FACTOR,
            backoff_max: Self::DEFAULT_BACKOFF_MAX,
            recovery_interval: Self::DEFAULT_RECOVERY_INTERVAL,
            recovery_reset: false,
            max_concurrent_requests: Self::DEFAULT_MAX_CONCURRENT_REQUESTS,
            storage: None,
            validate_api_key: true,
            api_key_validation_interval: Self::DEFAULT_API_KEY_VALIDATION_INTERVAL,
            proxy: ProxyConfig::default(),
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// The intake base URL the agent uses for metrics.
    ///
    /// `dd_url` (when set and not blank) wins over `site`; otherwise the URL is
    /// `https://app.<site>`. Then, as the agent's `AddAgentVersionToDomain` does, a Datadog host
    /// (`app[.mrf].[<dc>.]{datadoghq.com,datadoghq.eu,datad0g.com,datad0g.eu,ddog-gov.com}`) gets
    /// its first label replaced by `<major>-<minor>-<patch>-app.agent`, e.g.
    /// `https://7-62-1-app.agent.datadoghq.com`. Any other host (a proxy, a fake intake) is kept
    /// as given.
    ///
    /// # Errors
    ///
    /// A URL that does not parse or is not http(s) with a host, or a version that is not
    /// `MAJOR.MINOR.PATCH`.
    pub fn base_url_for(
        site: &str,
        dd_url: Option<&str>,
        agent_version: &str,
    ) -> Result<Uri, ForwarderError> {
        let (key, raw) = match dd_url.map(str::trim).filter(|url| !url.is_empty()) {
            Some(url) => ("dd_url", url.to_owned()),
            None => {
                let site = site.trim().trim_end_matches('.');
                if site.is_empty() {
                    return Err(ForwarderError::InvalidUrl {
                        key: "site",
                        value: site.to_owned(),
                        reason: "it is empty".to_owned(),
                    });
                }
                ("site", format!("https://app.{site}"))
            }
        };
        let uri = parse_base_url(key, &raw)?;
        let Some(host) = uri.host() else {
            // parse_base_url checked the host; keep the compiler honest without unwrapping.
            return Err(invalid(key, &raw, "it has no host"));
        };
        if uri.port().is_some() || !is_datadog_app_host(host) {
            return Ok(uri);
        }
        let prefix = version_prefix(agent_version)?;
        let rest = host.split_once('.').map_or("", |(_, rest)| rest);
        let versioned = format!(
            "{}://{prefix}-app.agent.{rest}{}",
            uri.scheme_str().unwrap_or("https"),
            uri.path().trim_end_matches('/'),
        );
        parse_base_url(key, &versioned)
    }

    /// Checks the settings that have a valid range.
    pub(crate) fn validate(&self) -> Result<(), ForwarderError> {
        let setting = |key, reason: &str| {
            Err(ForwarderError::InvalidSetting {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.timeout.is_zero() {
            return setting("forwarder_timeout", "must be greater than 0");
        }
        if self.retry_queue_max_bytes == 0 {
            return setting(
                "forwarder_retry_queue_payloads_max_size",
                "must be greater than 0",
            );
        }
        if self.max_concurrent_requests == 0 {
            return setting("forwarder_max_concurrent_requests", "must be at least 1");
        }
        if self.backoff_base.is_zero() || self.backoff_max.is_zero() {
            return setting(
                "forwarder_backoff_base/forwarder_backoff_max",
                "must be greater than 0",
            );
        }
        if !self.backoff_factor.is_finite() {
            return setting("forwarder_backoff_factor", "must be a finite number");
        }
        parse_base_url("dd_url", &self.base_url.to_string()).map(|_| ())
    }
}

fn invalid(key: &'static str, value: &str, reason: &str) -> ForwarderError {
    ForwarderError::InvalidUrl {
        key,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

fn parse_base_url(key: &'static str, raw: &str) -> Result<Uri, ForwarderError> {
    let uri: Uri = raw
        .parse()
        .map_err(|error: http::uri::InvalidUri| invalid(key, raw, &error.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(invalid(
                key,
                raw,
                &format!("scheme {other:?} is not http or https"),
            ));
        }
        None => return Err(invalid(key, raw, "it has no http:// or https:// scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(key, raw, "it has no host"));
    }
    if uri.query().is_some() {
        return Err(invalid(key, raw, "it must not have a query string"));
    }
    Ok(uri)
}

/// `7.62.1`, `7.62.1-rc.2`, `7.62.1+git.5.abc` → `7-62-1`.
fn version_prefix(version: &str) -> Result<String, ForwarderError> {
    let core = version
        .trim()
        .trim_start_matches('v')
        .split(['-', '+'])
        .next()
        .unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return Err(ForwarderError::InvalidAgentVersion {
            version: version.to_owned(),
        });
    }
    Ok(parts.join("-"))
}

/// The agent's `ddURLRegexp`: `^app(\.mrf)?\.([a-z]{2,}\d{1,2}\.)?(datad(oghq|0g)\.(com|eu)|ddog-gov\.com)\.?$`.
pub(crate) fn is_datadog_app_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let Some(rest) = host.strip_prefix("app.") else {
        return false;
    };
    let rest = rest.strip_prefix("mrf.").unwrap_or(rest);
    site_with_optional_dc(rest, &DATADOG_DOMAINS)
}

const DATADOG_DOMAINS: [&str; 5] = [
    "datadoghq.com",
    "datadoghq.eu",
    "datad0g.com",
    "datad0g.eu",
    "ddog-gov.com",
];

/// `[<dc>.]<domain>` where `<dc>` is `[a-z]{2,}\d{1,2}` (`us3`, `ap1`).
fn site_with_optional_dc(value: &str, domains: &[&str]) -> bool {
    domains.iter().any(|domain| {
        value == *domain
            || value
                .strip_suffix(domain)
                .and_then(|prefix| prefix.strip_suffix('.'))
                .is_some_and(is_datacenter_label)
    })
}

fn is_datacenter_label(label: &str) -> bool {
    let letters = label.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = &label[letters..];
    letters >= 2 && (1..=2).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The URL the agent validates API keys against (`getAPIDomain` in `forwarder_health.go`): for a
/// Datadog site, `https://api.<site>`; otherwise the base URL itself.
pub(crate) fn validation_base(base: &Uri) -> String {
    let plain = base.to_string();
    let plain = plain.trim_end_matches('/').to_owned();
    let Some(host) = base.host() else {
        return plain;
    };
    if base.port().is_some() || base.scheme_str() != Some("https") {
        return plain;
    }
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let labels: Vec<&str> = host.split('.').collect();
    // The site is the last two labels (`datadoghq.com`), plus a datacenter label before them.
    if labels.len() < 2 {
        return plain;
    }
    let domain = labels[labels.len() - 2..].join(".");
    let is_site = domain == "ddog-gov.com"
        || (labels[labels.len() - 2] == "datadoghq"
            && labels[labels.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_lowercase()));
    if !is_site {
        return plain;
    }
    let site = match labels.len() {
        n if n >= 3 && is_datacenter_label(labels[n - 3]) => format!("{}.{domain}", labels[n - 3]),
        _ => domain,
    };
    format!("https://api.{site}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(site: &str, dd_url: Option<&str>) -> String {
        ForwarderConfig::base_url_for(site, dd_url, "7.62.1")
            .expect("valid")
            .to_string()
    }

    #[test]
    fn site_becomes_the_versioned_app_agent_host() {
        assert_eq!(
            url("datadoghq.com", None),
            "https://7-62-1-app.agent.datadoghq.com/"
        );
        assert_eq!(
            url("us3.datadoghq.com", None),
            "https://7-62-1-app.agent.us3.datadoghq.com/"
        );
        assert_eq!(
            url("datadoghq.eu", None),
            "https://7-62-1-app.agent.datadoghq.eu/"
        );
        assert_eq!(
            url("ddog-gov.com", None),
            "https://7-62-1-app.agent.ddog-gov.com/"
        );
    }

    #[test]
    fn dd_url_wins_and_is_versioned_only_when_it_is_a_datadog_app_host() {
        assert_eq!(
            url("datadoghq.eu", Some("https://app.datadoghq.com")),
            "https://7-62-1-app.agent.datadoghq.com/"
        );
        assert_eq!(
            url("datadoghq.com", Some("http://127.0.0.1:8080")),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            url("datadoghq.com", Some("https://proxy.example.com/dd")),
            "https://proxy.example.com/dd"
        );
        // A blank dd_url is ignored, as the agent's `IsSet && != ""`.
        assert_eq!(
            url("datadoghq.com", Some("  ")),
            "https://7-62-1-app.agent.datadoghq.com/"
        );
        // Unknown sites are kept as `app.<site>`.
        assert_eq!(url("example.com", None), "https://app.example.com/");
    }

    #[test]
    fn prerelease_versions_use_their_numeric_core() {
        let uri = ForwarderConfig::base_url_for("datadoghq.com", None, "7.63.0-rc.2+git.1.abc")
            .expect("valid");
        assert_eq!(uri.host(), Some("7-63-0-app.agent.datadoghq.com"));
    }

    #[test]
    fn bad_urls_and_versions_name_the_setting() {
        let error = ForwarderConfig::base_url_for("datadoghq.com", Some("ftp://x"), "7.62.1")
            .expect_err("ftp");
        assert!(error.to_string().contains("dd_url"), "{error}");
        let error = ForwarderConfig::base_url_for("datadoghq.com", Some("app.datadoghq.com"), "7")
            .expect_err("no scheme");
        assert!(error.to_string().contains("scheme"), "{error}");
        let error =
            ForwarderConfig::base_url_for("datadoghq.com", None, "seven").expect_err("version");
        assert!(error.to_string().contains("MAJOR.MINOR.PATCH"), "{error}");
    }

    #[test]
    fn host_pattern_matches_the_agents_regexp() {
        for host in [
            "app.datadoghq.com",
            "app.mrf.datadoghq.com",
            "app.us5.datadoghq.com",
            "app.ap1.datadoghq.com.",
            "app.datad0g.com",
        ] {
            assert!(is_datadog_app_host(host), "{host}");
        }
        for host in [
            "api.datadoghq.com",
            "app.notdatadoghq.com",
            "app.example.com",
            "app.u3.datadoghq.com",
            "app.us123.datadoghq.com",
        ] {
            assert!(!is_datadog_app_host(host), "{host}");
        }
    }

    #[test]
    fn validation_goes_to_the_api_host_of_datadog_sites() {
        let base = |s: &str| s.parse::<Uri>().expect("uri");
        assert_eq!(
            validation_base(&base("https://7-62-1-app.agent.datadoghq.com")),
            "https://api.datadoghq.com"
        );
        assert_eq!(
            validation_base(&base("https://7-62-1-app.agent.us3.datadoghq.com")),
            "https://api.us3.datadoghq.com"
        );
        assert_eq!(
            validation_base(&base("http://127.0.0.1:9000")),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            validation_base(&base("https://proxy.example.com/dd")),
            "https://proxy.example.com/dd"
        );
    }
}
