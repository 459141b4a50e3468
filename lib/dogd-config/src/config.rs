//! The layered configuration: defaults < `datadog.yaml` < `DD_*` environment < runtime changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::schema::{self, Default, KeySpec, Kind};
use dogd_secrets::parse_handle as secret_handle;

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

/// A configuration file and environment as read, before secrets are resolved and values
/// validated. The binary uses it to find `ENC[handle]` values and the secret backend settings, then
/// turns it into a [`Config`].
#[derive(Clone, Debug)]
pub struct RawConfig {
    file: Option<Arc<Path>>,
    tree: Map<String, Value>,
    env: Environment,
}

impl RawConfig {
    /// Reads and parses `file` (if any); `env` supplies the `DD_*` overrides.
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
        Ok(Self {
            file: path,
            tree,
            env: env.clone(),
        })
    }

    /// Parses YAML text as if it had been read from `path`.
    pub fn from_yaml(path: &Path, text: &str, env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            file: Some(Arc::from(path)),
            tree: parse_yaml(path, text)?,
            env: env.clone(),
        })
    }

    /// Every `ENC[handle]` value, with the keys (dotted paths; list items by index) or environment
    /// variables that use it.
    pub fn secret_handles(&self) -> BTreeMap<String, Vec<String>> {
        let mut handles = dogd_secrets::find_handles(&Value::Object(self.tree.clone()));
        for spec in schema::KEYS {
            let var = spec.env_var();
            if let Some(handle) = self.env.get(&var).and_then(secret_handle) {
                handles.entry(handle.to_owned()).or_default().push(var);
            }
        }
        handles
    }

    /// One declared setting as the environment or the file gives it, validated: how the secret
    /// backend's own settings are read before secrets exist. `None` when unset.
    pub fn declared(&self, key: &str) -> Result<Option<Value>, ConfigError> {
        let spec = schema::find(key).ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_owned(),
        })?;
        if let Some((value, _)) = env_value(spec, &self.env, &BTreeMap::new())? {
            return Ok(Some(value));
        }
        match (&self.file, lookup(&self.tree, spec.key)) {
            (Some(path), Some(raw)) if !raw.is_null() => {
                validated(spec, raw, &path.display().to_string()).map(Some)
            }
            _ => Ok(default_value(spec, &self.env)),
        }
    }
}

/// Resolved secret values, by handle.
pub type SecretValues = BTreeMap<String, String>;

/// The validated layers below the runtime one. Rebuilt whole when secrets are refreshed.
#[derive(Debug)]
struct Snapshot {
    defaults: BTreeMap<&'static str, Value>,
    /// The whole file with secrets resolved, unknown keys included.
    file_tree: Map<String, Value>,
    /// Canonical values of declared keys found in the file.
    file_values: BTreeMap<&'static str, Value>,
    env_values: BTreeMap<&'static str, (Value, String)>,
    /// The resolved secrets, kept only so the scrubber can hide them wherever they appear.
    secret_values: Vec<String>,
}

impl Snapshot {
    fn build(raw: &RawConfig, secrets: &SecretValues) -> Result<Self, ConfigError> {
        let mut file_tree = raw.tree.clone();
        substitute_secrets(&mut file_tree, secrets);
        let mut defaults = BTreeMap::new();
        let mut file_values = BTreeMap::new();
        let mut env_values = BTreeMap::new();
        for spec in schema::KEYS {
            if let Some(value) = default_value(spec, &raw.env) {
                defaults.insert(spec.key, value);
            }
            // A key present with no value (`hostname:`) is left to the next layer.
            if let (Some(path), Some(value)) = (&raw.file, lookup(&file_tree, spec.key))
                && !value.is_null()
            {
                let origin = path.display().to_string();
                file_values.insert(spec.key, validated(spec, value, &origin)?);
            }
            if let Some((value, var)) = env_value(spec, &raw.env, secrets)? {
                env_values.insert(spec.key, (value, var));
            }
        }
        Ok(Self {
            defaults,
            file_tree,
            file_values,
            env_values,
            secret_values: secrets.values().cloned().collect(),
        })
    }
}

/// The daemon's configuration. Shared behind an `Arc`; the runtime layer changes through
/// [`Config::set_runtime`], and the layers below it are swapped whole when secrets are refreshed.
#[derive(Debug)]
pub struct Config {
    raw: RawConfig,
    secret_handles: BTreeMap<String, Vec<String>>,
    snapshot: RwLock<Arc<Snapshot>>,
    runtime: RwLock<BTreeMap<&'static str, Value>>,
    warnings: Vec<String>,
}

impl Config {
    /// Loads `file` (if any) and then the environment's `DD_*` overrides on top of the defaults.
    /// Every declared key is validated; the first invalid value is returned as an error. A
    /// configuration using `ENC[]` secrets must be loaded with [`Config::with_secrets`] instead.
    pub fn load(file: Option<&Path>, env: &Environment) -> Result<Self, ConfigError> {
        Self::with_secrets(RawConfig::load(file, env)?, &SecretValues::new())
    }

    /// Builds a configuration from YAML text as if it had been read from `path`.
    pub fn from_yaml(path: &Path, text: &str, env: &Environment) -> Result<Self, ConfigError> {
        Self::with_secrets(RawConfig::from_yaml(path, text, env)?, &SecretValues::new())
    }

    /// Validates `raw` with its `ENC[handle]` values replaced by `secrets`. A handle without a
    /// value is an error naming it and where it is used.
    pub fn with_secrets(raw: RawConfig, secrets: &SecretValues) -> Result<Self, ConfigError> {
        let secret_handles = raw.secret_handles();
        check_resolved(&secret_handles, secrets)?;
        let snapshot = Snapshot::build(&raw, secrets)?;
        let mut config = Self {
            raw,
            secret_handles,
            snapshot: RwLock::new(Arc::new(snapshot)),
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

    /// Replaces the resolved secrets (a refresh). The new values are validated first; on error
    /// nothing changes.
    pub fn refresh_secrets(&self, secrets: &SecretValues) -> Result<(), ConfigError> {
        check_resolved(&self.secret_handles, secrets)?;
        let snapshot = Arc::new(Snapshot::build(&self.raw, secrets)?);
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = snapshot;
        Ok(())
    }

    /// The resolved secret values, for the scrubber only (so they never leave the process).
    pub fn secret_values(&self) -> Vec<String> {
        self.current().secret_values.clone()
    }

    /// The `ENC[handle]` values in use, with where each is used.
    pub fn secret_handles(&self) -> &BTreeMap<String, Vec<String>> {
        &self.secret_handles
    }

    /// The `ENC[handle]` that gives `key` its effective value, if a secret does.
    pub fn secret_behind(&self, key: &str) -> Option<String> {
        let written = match self.get(key)?.source {
            Source::File(_) => lookup(&self.raw.tree, key)?.as_str()?.to_owned(),
            Source::Env(var) => self.raw.env.get(&var)?.to_owned(),
            Source::Default | Source::Runtime => return None,
        };
        secret_handle(&written).map(str::to_owned)
    }

    /// The configuration as read, before secrets (for the secret backend's settings on refresh).
    pub fn raw(&self) -> &RawConfig {
        &self.raw
    }

    fn current(&self) -> Arc<Snapshot> {
        // Writers swap whole snapshots, so a poisoned lock still holds a consistent one.
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The config file that was loaded, if any.
    pub fn file_path(&self) -> Option<&Path> {
        self.raw.file.as_deref()
    }

    /// Warnings found while loading (deprecated keys, ...), to be logged once logging is set up.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The effective value of `key` and its source. Undeclared keys are looked up in the file.
    pub fn get(&self, key: &str) -> Option<Setting> {
        let snapshot = self.current();
        let Some(spec) = schema::find(key) else {
            let value = lookup(&snapshot.file_tree, key)?.clone();
            let path = self.raw.file.clone()?;
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
        if let Some((value, var)) = snapshot.env_values.get(spec.key) {
            return Some(Setting {
                value: value.clone(),
                source: Source::Env(var.clone()),
            });
        }
        if let (Some(value), Some(path)) = (snapshot.file_values.get(spec.key), &self.raw.file) {
            return Some(Setting {
                value: value.clone(),
                source: Source::File(path.clone()),
            });
        }
        snapshot.defaults.get(spec.key).map(|value| Setting {
            value: value.clone(),
            source: Source::Default,
        })
    }

    /// Whether `key` was set by anything other than its default.
    pub fn is_set(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|setting| setting.source != Source::Default)
    }

    /// Checks a runtime value for a declared key and returns its canonical form, changing nothing.
    pub fn check_runtime(&self, key: &str, raw: &Value) -> Result<Value, ConfigError> {
        let spec = schema::find(key).ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_owned(),
        })?;
        validated(spec, raw, "runtime")
    }

    /// Changes a declared key at run time, after validating the new value. Nothing changes on error.
    pub fn set_runtime(&self, key: &str, raw: &Value) -> Result<(), ConfigError> {
        let value = self.check_runtime(key, raw)?;
        let Some(spec) = schema::find(key) else {
            return Err(ConfigError::UnknownKey {
                key: key.to_owned(),
            });
        };
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
    /// by key. Values come with secrets resolved: scrub before showing them.
    pub fn settings(&self) -> Vec<(String, Setting)> {
        let mut keys: Vec<String> = schema::KEYS
            .iter()
            .map(|spec| spec.key.to_owned())
            .collect();
        collect_leaves(&self.raw.tree, "", &mut keys);
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| self.get(&key).map(|setting| (key, setting)))
            .collect()
    }

    /// The effective configuration as one nested tree, for dumps (`GET /agent/config`, flares).
    /// Secret values appear as their `ENC[handle]`, never resolved; other credentials are still
    /// in clear and must go through the scrubber.
    pub fn effective_tree(&self) -> Value {
        // Undeclared keys are in the file tree as written; declared ones are overlaid with their
        // effective values, except where that value came from a secret.
        let mut tree = Value::Object(self.raw.tree.clone());
        for spec in schema::KEYS {
            let Some(setting) = self.get(spec.key) else {
                continue;
            };
            let written = match &setting.source {
                Source::File(_) => lookup(&self.raw.tree, spec.key).cloned(),
                Source::Env(var) => self
                    .raw
                    .env
                    .get(var)
                    .map(|text| Value::String(text.to_owned())),
                Source::Default | Source::Runtime => None,
            };
            let shown = match written {
                Some(Value::String(text)) if secret_handle(&text).is_some() => Value::String(text),
                _ => setting.value,
            };
            insert_path(&mut tree, spec.key, shown);
        }
        tree
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

    /// The error for a value of `key` that parses but is not usable (an unknown name, a bad
    /// combination), naming where the value came from.
    pub fn invalid_value(
        &self,
        key: &str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            value: value.to_string(),
            origin: self
                .get(key)
                .map_or_else(|| "config".to_owned(), |setting| setting.source.to_string()),
            reason: reason.into(),
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

    /// A number key (0 when unset).
    pub fn get_float(&self, key: &str) -> Result<f64, ConfigError> {
        Ok(self.typed(key, Value::as_f64)?.unwrap_or(0.0))
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
        Default::List(items) => Value::Array(
            items
                .iter()
                .map(|item| Value::String((*item).to_owned()))
                .collect(),
        ),
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

fn substitute_secrets(tree: &mut Map<String, Value>, secrets: &SecretValues) {
    fn walk(value: &mut Value, secrets: &SecretValues) {
        match value {
            Value::String(text) => {
                if let Some(resolved) = secret_handle(text).and_then(|handle| secrets.get(handle)) {
                    *text = resolved.clone();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| walk(item, secrets)),
            Value::Object(map) => map.values_mut().for_each(|item| walk(item, secrets)),
            _ => {}
        }
    }
    tree.values_mut().for_each(|value| walk(value, secrets));
}

fn check_resolved(
    handles: &BTreeMap<String, Vec<String>>,
    secrets: &SecretValues,
) -> Result<(), ConfigError> {
    match handles
        .iter()
        .find(|(handle, _)| !secrets.contains_key(*handle))
    {
        None => Ok(()),
        Some((handle, used_in)) => Err(ConfigError::UnresolvedSecret {
            handle: handle.clone(),
            used_in: used_in.join(", "),
        }),
    }
}

/// The environment's value for a declared key (secrets resolved), validated.
fn env_value(
    spec: &KeySpec,
    env: &Environment,
    secrets: &SecretValues,
) -> Result<Option<(Value, String)>, ConfigError> {
    // Keys with standard fallbacks (the proxy keys) follow the agent's proxy loading: a `DD_`
    // variable set to the empty string is a value (no proxy), winning over the fallbacks and
    // the file.
    if !spec.fallback_env.is_empty() {
        let var = spec.env_var();
        if env.get(&var) == Some("") {
            let value = value::from_env_text(spec.kind, "").map_err(|reason| {
                invalid(
                    spec,
                    &Value::String(String::new()),
                    format!("environment variable {var}"),
                    reason,
                )
            })?;
            return Ok(Some((value, var)));
        }
    }
    // Otherwise an empty variable counts as unset, as with the agent's env binding.
    let set = std::iter::once(spec.env_var())
        .chain(spec.fallback_env.iter().map(|name| (*name).to_owned()))
        .find_map(|var| {
            let text = env.get(&var).filter(|text| !text.is_empty())?;
            Some((var, text))
        });
    let Some((var, text)) = set else {
        return Ok(None);
    };
    let text = secret_handle(text)
        .and_then(|handle| secrets.get(handle))
        .map_or(text, String::as_str);
    let value = value::from_env_text(spec.kind, text).map_err(|reason| {
        invalid(
            spec,
            &Value::String(text.to_owned()),
            format!("environment variable {var}"),
            reason,
        )
    })?;
    Ok(Some((value, var)))
}

/// Sets `value` at a dotted path, creating mappings on the way (replacing non-mappings).
fn insert_path(tree: &mut Value, key: &str, value: Value) {
    let mut current = tree;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Value::Object(map) = current else { return };
        // Reuse the file's own spelling of the key when it differs only in case.
        let existing = map
            .keys()
            .find(|name| name.eq_ignore_ascii_case(part))
            .cloned()
            .unwrap_or_else(|| part.to_owned());
        if parts.peek().is_none() {
            map.insert(existing, value);
            return;
        }
        current = map
            .entry(existing)
            .or_insert_with(|| Value::Object(Map::new()));
    }
}
