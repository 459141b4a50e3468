//! The local sink used when no API key is set: every flush is appended as readable JSON lines to
//! a file under the state directory, so a new user sees exactly what would be sent.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use dogd_aggregator::{Flush, FlushSink};
use dogd_api::StatusProvider;
use serde_json::{Value, json};

/// A file holds at most this much before it is rotated.
pub(crate) const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept (`.1`, `.2`).
pub(crate) const KEPT_FILES: usize = 2;

/// Why the local sink could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the local sink {path}: {source}")]
pub struct LocalSinkError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug, Default)]
struct Written {
    flushes: u64,
    lines: u64,
    errors: u64,
}

/// Writes flushes to `<dir>/flushes.jsonl`.
#[derive(Debug, Clone)]
pub struct LocalSink {
    path: Arc<Path>,
    written: Arc<Mutex<Written>>,
}

impl LocalSink {
    /// A sink writing under `dir` (created 0700 if missing).
    pub fn new(dir: &Path) -> Result<Self, LocalSinkError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| LocalSinkError {
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self {
            path: Arc::from(dir.join("flushes.jsonl")),
            written: Arc::default(),
        })
    }

    /// The file flushes go to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `forwarder` status section for local-sink mode.
    pub fn status(&self) -> LocalSinkStatus {
        LocalSinkStatus { sink: self.clone() }
    }

    fn rotate_if_full(&self) -> std::io::Result<()> {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return Ok(());
        };
        if meta.len() < MAX_FILE_BYTES {
            return Ok(());
        }
        for index in (1..KEPT_FILES).rev() {
            let from = self.path.with_extension(format!("jsonl.{index}"));
            if from.exists() {
                std::fs::rename(
                    &from,
                    self.path.with_extension(format!("jsonl.{}", index + 1)),
                )?;
            }
        }
        std::fs::rename(&self.path, self.path.with_extension("jsonl.1"))
    }

    /// Appends one flush; each line is a self-contained JSON object.
    fn write(&self, flush: &Flush) -> std::io::Result<u64> {
        self.rotate_if_full()?;
        let mut out = Vec::with_capacity(4096);
        let mut lines = 0;
        for line in lines_of(flush) {
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
            lines += 1;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        file.write_all(&out)?;
        Ok(lines)
    }
}

/// The JSON lines of one flush.
fn lines_of(flush: &Flush) -> Vec<Value> {
    let ts = flush.timestamp;
    let tags = |tags: &[Arc<str>]| tags.iter().map(|tag| tag.to_string()).collect::<Vec<_>>();
    let mut lines = Vec::new();
    for serie in &flush.series {
        lines.push(json!({
            "flush_ts": ts,
            "kind": "series",
            "metric": serie.name.as_ref(),
            "type": serie.series_type.as_str(),
            "interval": serie.interval,
            "host": serie.host.as_ref(),
            "tags": tags(&serie.tags),
            "points": serie.points.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
        }));
    }
    for sketch in &flush.sketches {
        lines.push(json!({
            "flush_ts": ts,
            "kind": "sketch",
            "metric": sketch.name.as_ref(),
            "host": sketch.host.as_ref(),
            "tags": tags(&sketch.tags),
            "dogsketches": sketch.points.iter().map(|(t, s)| {
                let (k, n) = s.bins();
                json!({"ts": t, "cnt": s.count(), "min": s.min(), "max": s.max(), "avg": s.avg(), "sum": s.sum(), "k": k, "n": n})
            }).collect::<Vec<_>>(),
        }));
    }
    for check in &flush.service_checks {
        lines.push(json!({
            "flush_ts": ts,
            "kind": "service_check",
            "check": check.name,
            "host_name": check.host,
            "timestamp": check.timestamp,
            "status": check.status,
            "message": check.message,
            "tags": check.tags,
        }));
    }
    for event in &flush.events {
        lines.push(json!({
            "flush_ts": ts,
            "kind": "event",
            "msg_title": event.title,
            "msg_text": event.text,
            "timestamp": event.timestamp,
            "priority": event.priority,
            "host": event.host,
            "tags": event.tags,
            "alert_type": event.alert_type,
            "aggregation_key": event.aggregation_key,
            "source_type_name": event.source_type_name,
        }));
    }
    lines
}

#[async_trait]
impl FlushSink for LocalSink {
    async fn flush(&self, flush: Flush) {
        let sink = self.clone();
        let result = tokio::task::spawn_blocking(move || sink.write(&flush)).await;
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(Ok(lines)) => {
                written.flushes += 1;
                written.lines += lines;
            }
            Ok(Err(error)) => {
                written.errors += 1;
                tracing::error!(
                    "cannot write to the local sink {}: {error}",
                    self.path.display()
                );
            }
            Err(error) => {
                written.errors += 1;
                tracing::error!("local sink write task failed: {error}");
            }
        }
    }
}

/// The `forwarder` status section when writing to the local sink.
#[derive(Debug)]
pub struct LocalSinkStatus {
    sink: LocalSink,
}

impl StatusProvider for LocalSinkStatus {
    fn section(&self) -> &str {
        "forwarder"
    }

    fn title(&self) -> &str {
        "Forwarder"
    }

    fn status(&self) -> Value {
        let written = self
            .sink
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        json!({
            "mode": "local sink (no api_key: nothing is sent to Datadog)",
            "local_sink_file": self.sink.path.display().to_string(),
            "flushes_written": written.flushes,
            "lines_written": written.lines,
            "write_errors": written.errors,
        })
    }
}
