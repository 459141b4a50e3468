//! `dogstatsd_mapper_profiles`: rewrite metric names and add tags from the name (agent:
//! `comp/dogstatsd/mapper/mapper.go`, itself inspired by Prometheus' `statsd_exporter`).
//!
//! Configuration: a list of profiles `{name, prefix, mappings: [{match, match_type, name,
//! tags}]}`.
//! * A profile applies to names starting with its `prefix` (`*` matches every name).
//! * Only the **first** profile whose prefix matches is tried: when none of its mappings
//!   matches, the name is not mapped, even if a later profile would match it.
//! * Mappings are tried in order; the first match wins.
//! * `match_type` is `wildcard` (default) or `regex`. A wildcard pattern may only contain
//!   `[a-zA-Z0-9_.*-]`, no `**`, and each `*` matches one dot-free segment (`([^.]*)`). A
//!   regex is anchored (`^…$`); it is compiled with `regex-lite`, whose syntax is Go's RE2
//!   without Unicode classes (`\pL` …): patterns using those are rejected at load time.
//! * `name` and tag values expand `$1`, `${1}`, `$name`, `${name}` with Go's
//!   `Regexp.Expand` rules: the longest run of letters, digits and `_` after `$` is the
//!   group name, `$$` is a `$`, an unknown group expands to nothing, a malformed reference
//!   is kept literally.
//! * Tags are returned sorted by key (the agent iterates a Go map, in random order).
//! * Results, including "no match" for names inside a profile's prefix, are cached in a
//!   bounded cache of `dogstatsd_mapper_cache_size` entries.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

use regex_lite::{Captures, Regex};
use serde_json::Value;

/// Why a profile list was refused. Messages name the profile and the mapping at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapperError {
    /// The configuration is not a list.
    #[error("dogstatsd_mapper_profiles must be a list of profiles, got {found}")]
    NotAList {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A profile or a mapping is not an object, or one of its fields has the wrong type.
    #[error("{location}: {field} must be {expected}")]
    InvalidField {
        /// Where the problem is (`profile #0 (name)`, `profile: x, mapping num 1`).
        location: String,
        /// The field at fault.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A profile without a name (the agent's "missing profile name").
    #[error("missing profile name {index}")]
    MissingProfileName {
        /// Index of the profile in the list.
        index: usize,
    },
    /// A profile without a prefix.
    #[error("missing prefix for profile: {profile}")]
    MissingPrefix {
        /// The profile name.
        profile: String,
    },
    /// A `match_type` other than `wildcard` or `regex`.
    #[error(
        "profile: {profile}, mapping num {mapping}: invalid match type `{match_type}`, must be `wildcard` or `regex`"
    )]
    InvalidMatchType {
        /// The profile name.
        profile: String,
        /// Index of the mapping in the profile.
        mapping: usize,
        /// The value found.
        match_type: String,
    },
    /// A mapping without a target name.
    #[error("profile: {profile}, mapping num {mapping}: name is required")]
    MissingName {
        /// The profile name.
        profile: String,
        /// Index of the mapping in the profile.
        mapping: usize,
    },
    /// A mapping without a match pattern.
    #[error("profile: {profile}, mapping num {mapping}: match is required")]
    MissingMatch {
        /// The profile name.
        profile: String,
        /// Index of the mapping in the profile.
        mapping: usize,
    },
    /// A wildcard pattern with a character outside `[a-zA-Z0-9_.*-]`.
    #[error(
        "profile: {profile}, mapping num {mapping}: invalid wildcard match pattern `{pattern}`, it does not match allowed match regex `^[a-zA-Z0-9\\-_*.]+$`"
    )]
    InvalidWildcard {
        /// The profile name.
        profile: String,
        /// Index of the mapping in the profile.
        mapping: usize,
        /// The pattern.
        pattern: String,
    },
    /// A wildcard pattern containing `**`.
    #[error(
        "profile: {profile}, mapping num {mapping}: invalid wildcard match pattern `{pattern}`, it should not contain consecutive `*`"
    )]
    ConsecutiveWildcards {
        /// The profile name.
        profile: String,
        /// Index of the mapping in the profile.
        mapping: usize,
        /// The pattern.
        pattern: String,
    },
    /// A pattern that does not compile.
    #[error(
        "profile: {profile}, mapping num {mapping}: invalid match `{pattern}`, cannot compile regex: {reason}"
    )]
    InvalidRegex {
        /// The profile name.
        profile: String,
        /// Index of the mapping in the profile.
        mapping: usize,
        /// The pattern (after wildcard translation).
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// A cache size of 0 (the agent's LRU refuses it too).
    #[error("dogstatsd_mapper_cache_size must be positive")]
    InvalidCacheSize,
}

/// The outcome of a successful mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedName {
    /// The new metric name.
    pub name: String,
    /// Tags to append, `key:value`, sorted by key.
    pub tags: Vec<String>,
}

/// Compiled mapper profiles with their result cache; shareable between threads.
#[derive(Debug)]
pub struct Mapper {
    profiles: Vec<Profile>,
    cache: Cache,
}

#[derive(Debug)]
struct Profile {
    prefix: String,
    mappings: Vec<Mapping>,
}

#[derive(Debug)]
struct Mapping {
    regex: Regex,
    name: String,
    /// `(key, value template)`, sorted by key.
    tags: Vec<(String, String)>,
}

impl Mapper {
    /// Validates and compiles `dogstatsd_mapper_profiles` (as JSON: the YAML configuration
    /// or the `DD_DOGSTATSD_MAPPER_PROFILES` variable, decoded). `null` means no profile.
    /// Validation follows the agent, in its order: profile name, prefix, then for each
    /// mapping its match type, name, match, and pattern.
    pub fn from_profiles(profiles: &Value, cache_size: usize) -> Result<Self, MapperError> {
        if cache_size == 0 {
            return Err(MapperError::InvalidCacheSize);
        }
        let list: &[Value] = match profiles {
            Value::Null => &[],
            Value::Array(list) => list,
            other => {
                return Err(MapperError::NotAList {
                    found: json_type(other),
                });
            }
        };
        let mut compiled = Vec::with_capacity(list.len());
        for (index, profile) in list.iter().enumerate() {
            compiled.push(compile_profile(index, profile)?);
        }
        Ok(Self {
            profiles: compiled,
            cache: Cache::new(cache_size),
        })
    }

    /// Maps a metric name; `None` when no mapping applies.
    pub fn map(&self, name: &str) -> Option<Arc<MappedName>> {
        let profile = self
            .profiles
            .iter()
            .find(|profile| profile.prefix == "*" || name.starts_with(profile.prefix.as_str()))?;
        if let Some(cached) = self.cache.get(name) {
            return cached;
        }
        let result = profile.mappings.iter().find_map(|mapping| {
            let captures = mapping.regex.captures(name)?;
            let mut tags = Vec::with_capacity(mapping.tags.len());
            for (key, template) in &mapping.tags {
                let mut tag = String::with_capacity(key.len() + 1 + template.len());
                tag.push_str(key);
                tag.push(':');
                expand(&mapping.regex, &captures, template, &mut tag);
                tags.push(tag);
            }
            let mut mapped = String::with_capacity(mapping.name.len());
            expand(&mapping.regex, &captures, &mapping.name, &mut mapped);
            Some(Arc::new(MappedName { name: mapped, tags }))
        });
        self.cache.insert(name, result.clone());
        result
    }

    /// The number of cached results (for telemetry and tests).
    pub fn cached_results(&self) -> usize {
        self.cache.len()
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads an optional string field; `Ok("")` when absent or null.
fn string_field<'v>(
    object: &'v serde_json::Map<String, Value>,
    field: &'static str,
    location: impl FnOnce() -> String,
) -> Result<&'v str, MapperError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(MapperError::InvalidField {
            location: location(),
            field,
            expected: "a string",
        }),
    }
}

fn compile_profile(index: usize, profile: &Value) -> Result<Profile, MapperError> {
    let Value::Object(profile) = profile else {
        return Err(MapperError::InvalidField {
            location: format!("profile #{index}"),
            field: "profile",
            expected: "an object",
        });
    };
    let name = string_field(profile, "name", || format!("profile #{index}"))?;
    if name.is_empty() {
        return Err(MapperError::MissingProfileName { index });
    }
    let location = || format!("profile: {name}");
    let prefix = string_field(profile, "prefix", location)?;
    if prefix.is_empty() {
        return Err(MapperError::MissingPrefix {
            profile: name.to_owned(),
        });
    }
    let mappings: &[Value] = match profile.get("mappings") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(mappings)) => mappings,
        Some(_) => {
            return Err(MapperError::InvalidField {
                location: location(),
                field: "mappings",
                expected: "a list",
            });
        }
    };
    let mut compiled = Vec::with_capacity(mappings.len());
    for (i, mapping) in mappings.iter().enumerate() {
        compiled.push(compile_mapping(name, i, mapping)?);
    }
    Ok(Profile {
        prefix: prefix.to_owned(),
        mappings: compiled,
    })
}

fn compile_mapping(profile: &str, index: usize, mapping: &Value) -> Result<Mapping, MapperError> {
    let location = || format!("profile: {profile}, mapping num {index}");
    let Value::Object(mapping) = mapping else {
        return Err(MapperError::InvalidField {
            location: location(),
            field: "mapping",
            expected: "an object",
        });
    };
    let pattern = string_field(mapping, "match", location)?;
    let match_type = string_field(mapping, "match_type", location)?;
    let name = string_field(mapping, "name", location)?;
    let mut tags = Vec::new();
    match mapping.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let Value::String(value) = value else {
                    return Err(MapperError::InvalidField {
                        location: location(),
                        field: "tags",
                        expected: "an object of strings",
                    });
                };
                tags.push((key.clone(), value.clone()));
            }
        }
        Some(_) => {
            return Err(MapperError::InvalidField {
                location: location(),
                field: "tags",
                expected: "an object of strings",
            });
        }
    }
    tags.sort();

    let wildcard = match match_type {
        "" | "wildcard" => true,
        "regex" => false,
        other => {
            return Err(MapperError::InvalidMatchType {
                profile: profile.to_owned(),
                mapping: index,
                match_type: other.to_owned(),
            });
        }
    };
    if name.is_empty() {
        return Err(MapperError::MissingName {
            profile: profile.to_owned(),
            mapping: index,
        });
    }
    if pattern.is_empty() {
        return Err(MapperError::MissingMatch {
            profile: profile.to_owned(),
            mapping: index,
        });
    }
    let expression = if wildcard {
        wildcard_to_regex(profile, index, pattern)?
    } else {
        pattern.to_owned()
    };
    let anchored = format!("^{expression}$");
    let regex = Regex::new(&anchored).map_err(|error| MapperError::InvalidRegex {
        profile: profile.to_owned(),
        mapping: index,
        pattern: expression,
        reason: error.to_string(),
    })?;
    Ok(Mapping {
        regex,
        name: name.to_owned(),
        tags,
    })
}

/// Validates a wildcard pattern and translates it: `.` is literal, `*` captures a segment.
fn wildcard_to_regex(profile: &str, mapping: usize, pattern: &str) -> Result<String, MapperError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '.');
    if !pattern.chars().all(allowed) {
        return Err(MapperError::InvalidWildcard {
            profile: profile.to_owned(),
            mapping,
            pattern: pattern.to_owned(),
        });
    }
    if pattern.contains("**") {
        return Err(MapperError::ConsecutiveWildcards {
            profile: profile.to_owned(),
            mapping,
            pattern: pattern.to_owned(),
        });
    }
    let mut expression = String::with_capacity(pattern.len() * 2);
    for c in pattern.chars() {
        match c {
            '.' => expression.push_str("\\."),
            '*' => expression.push_str("([^.]*)"),
            c => expression.push(c),
        }
    }
    Ok(expression)
}

/// Appends `template` to `out`, replacing group references as Go's `Regexp.Expand` does.
fn expand(regex: &Regex, captures: &Captures<'_>, template: &str, out: &mut String) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(tail) = rest.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        match group_reference(rest) {
            Some((name, tail)) => {
                rest = tail;
                if let Some(value) = group_value(regex, captures, name) {
                    out.push_str(value);
                }
            }
            // Malformed: the `$` is kept as text.
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// Go's `extract`: a leading `name` or `{name}` made of letters, digits and `_`; returns
/// the name and what follows the reference.
fn group_reference(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let (name, tail) = body.split_at(end);
    if braced {
        let tail = tail.strip_prefix('}')?;
        return Some((name, tail));
    }
    Some((name, tail))
}

/// The text captured by a group given by number (no leading zero) or by name.
fn group_value<'h>(regex: &Regex, captures: &Captures<'h>, name: &str) -> Option<&'h str> {
    let numeric =
        name.bytes().all(|b| b.is_ascii_digit()) && !(name.len() > 1 && name.starts_with('0'));
    if numeric {
        // Go gives up on numbers of 9 digits or more: no such group can exist anyway.
        let index: usize = name.parse().ok()?;
        return captures.get(index).map(|m| m.as_str());
    }
    // Like Go, the first group with that name is used, even when it did not participate.
    let index = regex
        .capture_names()
        .position(|group| group == Some(name))?;
    captures.get(index).map(|m| m.as_str())
}

/// A bounded, thread-safe result cache: a few shards, each holding two generations. New
/// entries go to the current generation; when it is full it becomes the previous one (the
/// older previous generation is dropped) and hits in the previous generation are promoted.
/// This approximates LRU with O(1) work and no per-entry bookkeeping.
#[derive(Debug)]
struct Cache {
    shards: Box<[Mutex<Shard>]>,
    generation_capacity: usize,
    hasher: foldhash::fast::RandomState,
}

type Entry = Option<Arc<MappedName>>;

#[derive(Debug, Default)]
struct Shard {
    current: HashMap<Box<str>, Entry, foldhash::fast::RandomState>,
    previous: HashMap<Box<str>, Entry, foldhash::fast::RandomState>,
}

impl Shard {
    fn insert(&mut self, key: Box<str>, entry: Entry, capacity: usize) {
        if self.current.len() >= capacity {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, entry);
    }
}

impl Cache {
    fn new(capacity: usize) -> Self {
        // Shards cut lock contention between workers; small caches keep a single one so
        // that the bound stays meaningful.
        let shard_count = (capacity / 256).clamp(1, 16);
        // Two generations per shard: together they hold at most `capacity` entries.
        let generation_capacity = (capacity / shard_count / 2).max(1);
        Self {
            shards: (0..shard_count)
                .map(|_| Mutex::new(Shard::default()))
                .collect(),
            generation_capacity,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let index = (self.hasher.hash_one(key) % self.shards.len() as u64) as usize;
        &self.shards[index]
    }

    /// `Some(entry)` on a hit (the entry itself being `None` for a cached "no match").
    fn get(&self, key: &str) -> Option<Entry> {
        // A panic while holding the lock cannot leave a shard inconsistent (maps are only
        // swapped or inserted into), so a poisoned lock is still usable.
        let mut shard = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = shard.current.get(key) {
            return Some(entry.clone());
        }
        let (key, entry) = shard.previous.remove_entry(key)?;
        shard.insert(key, entry.clone(), self.generation_capacity);
        Some(entry)
    }

    fn insert(&self, key: &str, entry: Entry) {
        let mut shard = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.insert(key.into(), entry, self.generation_capacity);
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                shard.current.len() + shard.previous.len()
            })
            .sum()
    }
}
