//! dogd's configuration: `datadog.yaml`, `DD_*` environment overrides, built-in defaults and
//! runtime changes, with the source of every effective value.
//!
//! Load with [`Config::load`]; read typed views with [`GeneralConfig::from_config`],
//! [`LogConfig::from_config`] and [`ApiServerConfig::from_config`], or any key with [`Config::get`].

#![warn(missing_docs)]

mod config;
mod error;
mod runtime;
pub mod schema;
mod sections;
mod value;

pub use config::{Config, Environment, RawConfig, SecretValues, Setting, Source};
pub use dogd_secrets::parse_handle as secret_handle;
pub use error::ConfigError;
pub use runtime::{ApplyFn, ConfigSetting, RuntimeSetting, RuntimeSettings};
pub use sections::{ApiServerConfig, GeneralConfig, LogConfig};
pub use value::LogLevel;

use std::path::{Path, PathBuf};

/// The file name looked for when the config path is a directory.
pub const CONFIG_FILE_NAME: &str = "datadog.yaml";

/// Resolves which config file to load: the `--cfgpath` flag, else `DD_CONF_PATH`, else none. A
/// directory means `<dir>/datadog.yaml`, as with the agent's `-c`.
pub fn resolve_config_path(flag: Option<&Path>, env: &Environment) -> Option<PathBuf> {
    let chosen = flag.map(Path::to_path_buf).or_else(|| {
        env.get("DD_CONF_PATH")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    })?;
    if chosen.is_dir() {
        Some(chosen.join(CONFIG_FILE_NAME))
    } else {
        Some(chosen)
    }
}

/// A credential: never printed by `Debug` or `Display`, shown only in redacted form.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The credential itself, for the few places that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", redact(&self.0))
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// Redacts a credential the way the agent's scrubber shows API keys: every character but the last
/// five becomes `*` (values of five characters or fewer are fully hidden).
pub fn redact(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len().max(5));
    }
    let keep = chars.len() - 5;
    let mut out = "*".repeat(keep);
    out.extend(&chars[keep..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_keeps_the_last_five_characters() {
        assert_eq!(
            redact("0123456789abcdef0123456789abcdef"),
            format!("{}bcdef", "*".repeat(27))
        );
        assert_eq!(redact("abc"), "*****");
    }

    #[test]
    fn secret_debug_does_not_show_the_value() {
        let secret = Secret::new("supersecretapikey12345".to_owned());
        assert!(!format!("{secret:?}").contains("supersecret"));
        assert!(!secret.to_string().contains("supersecret"));
        assert_eq!(secret.expose(), "supersecretapikey12345");
    }

    #[test]
    fn config_dir_resolves_to_datadog_yaml_inside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = Environment::from_pairs([("DD_CONF_PATH", dir.path().display().to_string())]);
        assert_eq!(
            resolve_config_path(None, &env),
            Some(dir.path().join("datadog.yaml"))
        );
        let flag = Path::new("/etc/other.yaml");
        assert_eq!(
            resolve_config_path(Some(flag), &env),
            Some(flag.to_path_buf())
        );
        assert_eq!(resolve_config_path(None, &Environment::default()), None);
    }
}
