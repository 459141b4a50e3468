//! The layered configuration: defaults < `datadog.yaml` < `DD_*` environment < runtime changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::schema::{self, Default, KeySpec, Kind};
use crate::value::{self, LogLevel, canonicalize};

/// A snapshot of environment variables, passed in explicitly so tests never touch the process
/// environment.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The current process's environment (variables that are not valid UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// An environment made of the given pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }

    /// The value of a variable, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// Which layer an effective value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The config file at this path.
    File(Arc<Path>),
    /// This environment variable.
    Env(String),
    /// Changed at run time (API or CLI).
    Runtime,
}

impl Source {
    /// The layer's short name: `default`, `file`, `env` or `runtime`.
    pub fn layer(&self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::File(_) => "file",
            Self::Env(_) => "env",
            Self::Runtime => "runtime",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(var) => write!(f, "env {var}"),
            Self::Runtime => f.write_str("runtime"),
        }
    }
}

/// An effective value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The value (canonical form for declared keys).
    pub value: Value,
    /// The layer it came from.
    pub source: Source,
}

/// The daemon's configuration. Cheap to share behind an `Arc`; only the runtime layer changes after
/// load.
#[derive(Debug)]
pub struct Config {
    file: Option<Arc<Path>>,
    defaults: BTreeMap<&'static str, Value>,
    /// The whole file as loaded, unknown keys included.
    file_tree: Map<String, Value>,
    /// Canonical values of declared keys found in the file.
    file_values: BTreeMap<&'static str, Value>,
    env_values: BTreeMap<&'static str, (Value, String)>,
    runtime: RwLock<BTreeMap<&'static str, Value>>,
    warnings: Vec<String>,
}

impl Config {
    /// Loads `file` (if any) and then the environment's `DD_*` overrides on top of the defaults.
    /// Every declared key is validated; the first invalid value is returned as an error.
    pub fn load(file: Option<&Path>, env: &Environment) -> Result<Self, ConfigError> {
        let (path, tree) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                (Some(Arc::from(path)), parse_yaml(path, &text)?)
            }
            None => (None, Map::new()),
        };
        Self::from_layers(path, tree, env)
    }

    /// Builds a configuration from YAML text as if it had been read from `path`.
    pub fn from_yaml(path: &Path, text: &str, env: &Environment) -> Result<Self, ConfigError> {
        let tree = parse_yaml(path, text)?;
        Self::from_layers(Some(Arc::from(path)), tree, env)
    }

    fn from_layers(
        file: Option<Arc<Path>>,
        file_tree: Map<String, Value>,
        env: &Environment,
    ) -> Result<Self, ConfigError> {
        let mut defaults = BTreeMap::new();
        let mut file_values = BTreeMap::new();
        let mut env_values = BTreeMap::new();
        for spec in schema::KEYS {
            if let Some(value) = default_value(spec, env) {
                defaults.insert(spec.key, value);
            }
            // A key present with no value (`hostname:`) is left to the next layer.
            if let (Some(path), Some(raw)) = (&file, lookup(&file_tree, spec.key))
                && !raw.is_null()
            {
                let origin = path.display().to_string();
                file_values.insert(spec.key, validated(spec, raw, &origin)?);
            }
            let var = spec.env_var();
            // An empty variable counts as unset, as with the agent's env binding.
            if let Some(text) = env.get(&var).filter(|text| !text.is_empty()) {
                let value = value::from_env_text(spec.kind, text).map_err(|reason| {
                    invalid(
                        spec,
                        &Value::String(text.to_owned()),
                        format!("environment variable {var}"),
                        reason,
                    )
                })?;
                env_values.insert(spec.key, (value, var));
            }
        }
        let mut config = Self {
            file,
            defaults,
            file_tree,
            file_values,
            env_values,
            runtime: RwLock::new(BTreeMap::new()),
            warnings: Vec::new(),
        };
        if config.is_set("ipc_address") {
            config
                .warnings
                .push("ipc_address is deprecated, use cmd_host instead".to_owned());
        }
        Ok(config)
    }

    /// The config file that was loaded, if any.
    pub fn file_path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Warnings found while loading (deprecated keys, ...), to be logged once logging is set up.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The effective value of `key` and its source. Undeclared keys are looked up in the file.
    pub fn get(&self, key: &str) -> Option<Setting> {
        let Some(spec) = schema::find(key) else {
            let value = lookup(&self.file_tree, key)?.clone();
            let path = self.file.clone()?;
            return Some(Setting {
                value,
                source: Source::File(path),
            });
        };
        if let Some(value) = self.read_runtime().get(spec.key) {
            return Some(Setting {
                value: value.clone(),
                source: Source::Runtime,
            });
        }
        if let Some((value, var)) = self.env_values.get(spec.key) {
            return Some(Setting {
                value: value.clone(),
                source: Source::Env(var.clone()),
            });
        }
        if let (Some(value), Some(path)) = (self.file_values.get(spec.key), &self.file) {
            return Some(Setting {
                value: value.clone(),
                source: Source::File(path.clone()),
            });
        }
        self.defaults.get(spec.key).map(|value| Setting {
            value: value.clone(),
            source: Source::Default,
        })
    }

    /// Whether `key` was set by anything other than its default.
    pub fn is_set(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|setting| setting.source != Source::Default)
    }

    /// Changes a declared key at run time, after validating the new value. Nothing changes on error.
    pub fn set_runtime(&self, key: &str, raw: &Value) -> Result<(), ConfigError> {
        let spec = schema::find(key).ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_owned(),
        })?;
        let value = validated(spec, raw, "runtime")?;
        self.runtime
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(spec.key, value);
        Ok(())
    }

    fn read_runtime(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<&'static str, Value>> {
        // Writers only insert whole values, so a poisoned lock still holds consistent data.
        self.runtime.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every effective setting: declared keys (set or defaulted) and every leaf of the file, sorted
    /// by key.
    pub fn settings(&self) -> Vec<(String, Setting)> {
        let mut keys: Vec<String> = schema::KEYS
            .iter()
            .map(|spec| spec.key.to_owned())
            .collect();
        collect_leaves(&self.file_tree, "", &mut keys);
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| self.get(&key).map(|setting| (key, setting)))
            .collect()
    }

    // Typed getters. Declared keys were validated at load, so these only fail on a key of another
    // kind (a programming error), reported as an invalid value rather than a panic.

    fn typed<T>(
        &self,
        key: &str,
        kind_of: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(setting) = self.get(key) else {
            return Ok(None);
        };
        if setting.value.is_null() {
            return Ok(None);
        }
        match kind_of(&setting.value) {
            Some(typed) => Ok(Some(typed)),
            None => Err(ConfigError::InvalidValue {
                key: key.to_owned(),
                value: value::display(&setting.value),
                origin: setting.source.to_string(),
                reason: format!("unexpected {}", value::describe(&setting.value)),
            }),
        }
    }

    /// A boolean key (false when unset).
    pub fn get_bool(&self, key: &str) -> Result<bool, ConfigError> {
        Ok(self.typed(key, Value::as_bool)?.unwrap_or(false))
    }

    /// An integer key (0 when unset).
    pub fn get_int(&self, key: &str) -> Result<i64, ConfigError> {
        Ok(self.typed(key, Value::as_i64)?.unwrap_or(0))
    }

    /// A port key (declared with range 0–65535; 0 when unset).
    pub fn get_port(&self, key: &str) -> Result<u16, ConfigError> {
        Ok(self
            .typed(key, |value| {
                value.as_u64().and_then(|n| u16::try_from(n).ok())
            })?
            .unwrap_or(0))
    }

    /// A duration key (zero when unset).
    pub fn get_duration(&self, key: &str) -> Result<Duration, ConfigError> {
        Ok(self
            .typed(key, |value| {
                value
                    .as_f64()
                    .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            })?
            .unwrap_or_default())
    }

    /// A string key; `None` when unset or empty.
    pub fn get_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self
            .typed(key, |value| value.as_str().map(str::to_owned))?
            .filter(|text| !text.is_empty()))
    }

    /// A path key; `None` when unset or empty.
    pub fn get_path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.get_string(key)?.map(PathBuf::from))
    }

    /// A list-of-strings key (empty when unset).
    pub fn get_string_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .typed(key, |value| {
                value
                    .as_array()?
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })?
            .unwrap_or_default())
    }

    /// A log-level key (`info` when unset).
    pub fn get_log_level(&self, key: &str) -> Result<LogLevel, ConfigError> {
        Ok(self
            .typed(key, |value| value.as_str().and_then(LogLevel::parse))?
            .unwrap_or(LogLevel::Info))
    }
}

fn parse_yaml(path: &Path, text: &str) -> Result<Map<String, Value>, ConfigError> {
    let value: Value = serde_saphyr::from_str(text).map_err(|error| ConfigError::Yaml {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        // An empty (or comments-only) file is a valid, empty configuration.
        Value::Null => Ok(Map::new()),
        other => Err(ConfigError::NotAMapping {
            path: path.to_owned(),
            found: value::describe(&other),
        }),
    }
}

/// Finds a dotted key in a YAML tree. Keys match case-insensitively, as viper lower-cases them.
fn lookup<'a>(tree: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let first = parts.next()?;
    let mut current = find_key(tree, first)?;
    for part in parts {
        current = find_key(current.as_object()?, part)?;
    }
    Some(current)
}

fn find_key<'a>(map: &'a Map<String, Value>, part: &str) -> Option<&'a Value> {
    map.get(part).or_else(|| {
        map.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(part))
            .map(|(_, value)| value)
    })
}

fn collect_leaves(tree: &Map<String, Value>, prefix: &str, out: &mut Vec<String>) {
    for (name, value) in tree {
        let key = if prefix.is_empty() {
            name.to_ascii_lowercase()
        } else {
            format!("{prefix}.{}", name.to_ascii_lowercase())
        };
        match value {
            // A declared key holding a mapping (kind Any) is one setting, not a subtree.
            Value::Object(children) if schema::find(&key).is_none() && !children.is_empty() => {
                collect_leaves(children, &key, out);
            }
            _ => out.push(key),
        }
    }
}

fn validated(spec: &KeySpec, raw: &Value, origin: &str) -> Result<Value, ConfigError> {
    canonicalize(spec.kind, raw).map_err(|reason| invalid(spec, raw, origin.to_owned(), reason))
}

fn invalid(spec: &KeySpec, raw: &Value, origin: String, reason: String) -> ConfigError {
    let shown = if spec.secret {
        crate::redact(&value::display(raw))
    } else {
        value::display(raw)
    };
    ConfigError::InvalidValue {
        key: spec.key.to_owned(),
        value: shown,
        origin,
        reason,
    }
}

fn default_value(spec: &KeySpec, env: &Environment) -> Option<Value> {
    Some(match spec.default {
        Default::Unset => return None,
        Default::Bool(b) => Value::Bool(b),
        Default::Int(n) => Value::from(n),
        Default::Float(secs) => value::seconds_value(secs).ok()?,
        Default::Str(text) => match spec.kind {
            Kind::StrList => Value::Array(vec![Value::String(text.to_owned())]),
            _ => Value::String(text.to_owned()),
        },
        Default::EmptyList => Value::Array(Vec::new()),
        Default::StateDir => Value::String(state_dir(env).display().to_string()),
    })
}

/// The per-user state directory: `$XDG_STATE_HOME/dogd`, else `$HOME/.local/state/dogd`, else a
/// directory under the system temp dir.
fn state_dir(env: &Environment) -> PathBuf {
    let absolute = |name: &str| {
        env.get(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    if let Some(state_home) = absolute("XDG_STATE_HOME") {
        state_home.join("dogd")
    } else if let Some(home) = absolute("HOME") {
        home.join(".local/state/dogd")
    } else {
        std::env::temp_dir().join("dogd-state")
    }
}
