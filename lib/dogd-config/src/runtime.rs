//! Settings that can be read and changed while the daemon runs (`dogd config set log_level debug`),
//! registered by the components that own them.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

use crate::config::{Config, Source};

/// One runtime-settable setting.
pub trait RuntimeSetting: Send + Sync {
    /// The setting's name (`log_level`).
    fn name(&self) -> &str;
    /// What it controls.
    fn description(&self) -> &str;
    /// The current value and where it came from.
    fn current(&self) -> (Value, Source);
    /// Applies a new value given as text. On error nothing changes and the reason is returned.
    fn set(&self, value: &str) -> Result<(), String>;
}

/// The registry of runtime settings. Cheap to clone.
#[derive(Clone, Default)]
pub struct RuntimeSettings {
    settings: Arc<RwLock<BTreeMap<String, Arc<dyn RuntimeSetting>>>>,
}

impl std::fmt::Debug for RuntimeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl RuntimeSettings {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a setting (replacing one of the same name).
    pub fn register(&self, setting: Arc<dyn RuntimeSetting>) {
        self.settings
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(setting.name().to_owned(), setting);
    }

    /// The setting called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn RuntimeSetting>> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Every setting, sorted by name.
    pub fn list(&self) -> Vec<Arc<dyn RuntimeSetting>> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Every setting's name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

/// Makes a validated new value take effect; the error is the reason it could not.
pub type ApplyFn = Box<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// A runtime setting backed by a declared config key: the new value is validated by the key's
/// kind, handed to `apply` (which makes it take effect), then recorded in the config's runtime
/// layer so `dogd config` shows it with source `runtime`.
pub struct ConfigSetting {
    config: Arc<Config>,
    key: &'static str,
    description: &'static str,
    apply: ApplyFn,
}

impl std::fmt::Debug for ConfigSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSetting")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ConfigSetting {
    /// A setting for `key` (a key declared in the schema).
    pub fn new(
        config: Arc<Config>,
        key: &'static str,
        description: &'static str,
        apply: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            config,
            key,
            description,
            apply: Box::new(apply),
        }
    }
}

impl RuntimeSetting for ConfigSetting {
    fn name(&self) -> &str {
        self.key
    }

    fn description(&self) -> &str {
        self.description
    }

    fn current(&self) -> (Value, Source) {
        self.config
            .get(self.key)
            .map_or((Value::Null, Source::Default), |setting| {
                (setting.value, setting.source)
            })
    }

    fn set(&self, value: &str) -> Result<(), String> {
        let canonical = self
            .config
            .check_runtime(self.key, &Value::String(value.to_owned()))
            .map_err(|error| error.to_string())?;
        (self.apply)(&canonical)?;
        self.config
            .set_runtime(self.key, &canonical)
            .map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::Environment;

    #[test]
    fn config_setting_validates_applies_then_records() {
        let config = Arc::new(Config::load(None, &Environment::default()).expect("config"));
        let applied = Arc::new(Mutex::new(Vec::new()));
        let seen = applied.clone();
        let setting = ConfigSetting::new(config.clone(), "log_level", "Log level", move |value| {
            seen.lock().expect("lock").push(value.clone());
            Ok(())
        });
        assert_eq!(setting.current(), (Value::from("info"), Source::Default));
        setting.set("WARNING").expect("valid");
        assert_eq!(setting.current(), (Value::from("warn"), Source::Runtime));
        assert_eq!(*applied.lock().expect("lock"), vec![Value::from("warn")]);

        let error = setting.set("chatty").expect_err("invalid");
        assert!(error.contains("invalid value for log_level"), "{error}");
        assert_eq!(setting.current().0, Value::from("warn"), "unchanged");
        assert_eq!(applied.lock().expect("lock").len(), 1, "apply not called");
    }

    #[test]
    fn failed_apply_changes_nothing() {
        let config = Arc::new(Config::load(None, &Environment::default()).expect("config"));
        let setting = ConfigSetting::new(config, "log_level", "Log level", |_| {
            Err("logger is gone".to_owned())
        });
        assert_eq!(setting.set("debug"), Err("logger is gone".to_owned()));
        assert_eq!(setting.current(), (Value::from("info"), Source::Default));
    }

    #[test]
    fn registry_lists_settings_by_name() {
        let config = Arc::new(Config::load(None, &Environment::default()).expect("config"));
        let registry = RuntimeSettings::new();
        registry.register(Arc::new(ConfigSetting::new(
            config.clone(),
            "log_level",
            "Log level",
            |_| Ok(()),
        )));
        registry.register(Arc::new(ConfigSetting::new(
            config,
            "dogstatsd_port",
            "Port",
            |_| Ok(()),
        )));
        assert_eq!(registry.names(), ["dogstatsd_port", "log_level"]);
        assert!(registry.get("log_level").is_some());
        assert!(registry.get("nope").is_none());
    }
}
