//! The `core` status section: version, uptime, hostname, configuration, API listeners and the
//! health of every component.

use std::path::PathBuf;
use std::time::Instant;

use dogd_api::ListenAddrs;
use dogd_core::HealthRegistry;
use serde_json::{Value, json};

use dogd_api::StatusProvider;

/// Facts about this build.
#[derive(Clone, Debug)]
pub struct BuildFacts {
    /// Version (`0.1.0`).
    pub version: String,
    /// Git commit.
    pub commit: String,
    /// Compiler version.
    pub rustc: String,
}

/// The `core` section.
#[derive(Debug)]
pub struct CoreStatus {
    /// When the daemon started.
    pub started: Instant,
    /// Build facts.
    pub build: BuildFacts,
    /// The reported hostname.
    pub hostname: String,
    /// The config file, if any.
    pub config_file: Option<PathBuf>,
    /// The state directory.
    pub run_path: PathBuf,
    /// Where the API servers listen.
    pub listen: ListenAddrs,
    /// Component health.
    pub health: HealthRegistry,
}

/// `1d2h3m4s`-style uptime.
pub fn format_uptime(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (hours, rest) = (rest / 3600, rest % 3600);
    let (minutes, secs) = (rest / 60, rest % 60);
    let mut out = String::new();
    for (amount, unit) in [(days, "d"), (hours, "h"), (minutes, "m")] {
        if amount > 0 || !out.is_empty() {
            out.push_str(&format!("{amount}{unit}"));
        }
    }
    out.push_str(&format!("{secs}s"));
    out
}

impl StatusProvider for CoreStatus {
    fn section(&self) -> &str {
        "core"
    }

    fn title(&self) -> &str {
        "dogd"
    }

    fn status(&self) -> Value {
        let uptime = self.started.elapsed().as_secs();
        let health = self.health.report();
        json!({
            "version": self.build.version,
            "commit": self.build.commit,
            "rustc": self.build.rustc,
            "pid": std::process::id(),
            "hostname": self.hostname,
            "uptime": format_uptime(uptime),
            "uptime_seconds": uptime,
            "config_file": self.config_file.as_ref().map(|path| path.display().to_string()),
            "run_path": self.run_path.display().to_string(),
            "api_listeners": {
                "cmd": self.listen.cmd().map(|addr| addr.to_string()),
                "ipc": self.listen.ipc().map(|addr| addr.to_string()),
            },
            "components": {
                "healthy": health.healthy,
                "unhealthy": health.unhealthy.iter().map(|c| json!({"name": c.name, "reason": c.reason})).collect::<Vec<_>>(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_compact_and_exact() {
        assert_eq!(format_uptime(0), "0s");
        assert_eq!(format_uptime(61), "1m1s");
        assert_eq!(format_uptime(3600), "1h0m0s");
        assert_eq!(format_uptime(90_061), "1d1h1m1s");
    }
}
