//! Per-metric stats (`dogstatsd_metrics_stats_enable`): how often each metric name + tags was
//! seen and when last, for `GET /agent/dogstatsd-stats` and `dogd dogstatsd-stats`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

/// Entries kept at most; when full, the least recently seen is evicted (as the agent does).
pub const MAX_ENTRIES: usize = 65_536;
/// Entries not seen for this long are dropped.
pub const ENTRY_TTL: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Entry {
    name: String,
    tags: String,
    count: u64,
    last_seen: SystemTime,
}

/// The stats, switchable at run time. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct MetricStats {
    enabled: Arc<AtomicBool>,
    entries: Arc<Mutex<HashMap<u64, Entry>>>,
}

impl MetricStats {
    /// Stats, on or off.
    pub fn new(enabled: bool) -> Self {
        let stats = Self::default();
        stats.set_enabled(enabled);
        stats
    }

    /// Whether samples are being counted.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns counting on or off; turning it off forgets what was counted.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
        if !enabled {
            self.entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// Counts one sample of a metric. `key` identifies name + tags (host excluded); `tags` is only
    /// read when the entry is new.
    pub fn record(&self, key: u64, name: &str, tags: &[std::sync::Arc<str>]) {
        if !self.enabled() {
            return;
        }
        let now = SystemTime::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(&key) {
            entry.count += 1;
            entry.last_seen = now;
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| {
                now.duration_since(entry.last_seen).unwrap_or_default() < ENTRY_TTL
            });
            if entries.len() >= MAX_ENTRIES
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.last_seen)
                    .map(|(key, _)| *key)
            {
                entries.remove(&oldest);
            }
        }
        let tags = tags.iter().map(|tag| &**tag).collect::<Vec<_>>().join(" ");
        entries.insert(
            key,
            Entry {
                name: name.to_owned(),
                tags,
                count: 1,
                last_seen: now,
            },
        );
    }

    /// The agent's JSON: `{"<key>": {"name", "count", "last_seen", "tags"}}`.
    pub fn to_json(&self) -> Value {
        let now = SystemTime::now();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Value::Object(
            entries
                .iter()
                .filter(|(_, entry)| {
                    now.duration_since(entry.last_seen).unwrap_or_default() < ENTRY_TTL
                })
                .map(|(key, entry)| {
                    (
                        key.to_string(),
                        json!({
                            "name": entry.name,
                            "count": entry.count,
                            "last_seen": dogd_core::clock::UtcTime::of(entry.last_seen).rfc3339(),
                            "tags": entry.tags,
                        }),
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_only_while_enabled() {
        let stats = MetricStats::new(false);
        stats.record(1, "a", &[]);
        assert_eq!(stats.to_json(), json!({}));
        stats.set_enabled(true);
        let tags = [Arc::from("env:prod"), Arc::from("team:x")];
        stats.record(1, "requests", &tags);
        stats.record(1, "requests", &tags);
        stats.record(2, "latency", &[]);
        let json = stats.to_json();
        assert_eq!(json["1"]["count"], 2);
        assert_eq!(json["1"]["tags"], "env:prod team:x");
        assert_eq!(json["2"]["name"], "latency");
        assert!(
            json["1"]["last_seen"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        stats.set_enabled(false);
        assert_eq!(stats.to_json(), json!({}));
    }
}
