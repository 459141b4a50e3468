//! Log setup: the agent's line format, to stderr and/or `log_file`, with a level that can be changed
//! while running.

use std::fs::OpenOptions;
use std::sync::Arc;

use anyhow::Context as _;
use dogd_config::{LogConfig, LogLevel};
use dogd_core::clock::UtcTime;
use dogd_ops::RecentLogs;
use dogd_scrubber::Scrubber;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Changes the log level of the running daemon.
#[derive(Clone)]
pub(crate) struct LogLevelControl {
    handle: reload::Handle<Targets, tracing_subscriber::Registry>,
}

impl LogLevelControl {
    /// Applies a new level to every following log line.
    #[allow(dead_code, reason = "used by the runtime settings API")]
    pub(crate) fn set(&self, level: LogLevel) -> anyhow::Result<()> {
        self.handle
            .reload(filter_for(level))
            .context("cannot change the log level")
    }
}

/// Installs the global subscriber. Call once, before anything logs. Every line is scrubbed and
/// also kept in `recent` (for flares).
pub(crate) fn init(
    config: &LogConfig,
    scrubber: Scrubber,
    recent: RecentLogs,
) -> anyhow::Result<LogLevelControl> {
    let (filter, handle) = reload::Layer::new(filter_for(config.level));
    let writer = make_writer(config, recent)?;
    let format = tracing_subscriber::fmt::layer()
        .event_format(AgentFormat { scrubber })
        .with_ansi(false)
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .try_init()
        .context("a logger is already installed")?;
    Ok(LogLevelControl { handle })
}

fn make_writer(config: &LogConfig, recent: RecentLogs) -> anyhow::Result<BoxMakeWriter> {
    let file = match &config.file {
        None => None,
        Some(path) => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the log directory {}", dir.display())
                })?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log_file {}", path.display()))?;
            // `&File` writes are unbuffered and the file is in append mode, so each formatted line
            // lands whole.
            Some(Arc::new(file))
        }
    };
    let recent = move || recent.clone();
    Ok(match (config.to_console, file) {
        (true, Some(file)) => BoxMakeWriter::new(std::io::stderr.and(file).and(recent)),
        (false, Some(file)) => BoxMakeWriter::new(file.and(recent)),
        (true, None) => BoxMakeWriter::new(std::io::stderr.and(recent)),
        (false, None) => BoxMakeWriter::new(recent),
    })
}

/// The level for our own crates, with the protocol libraries' chatter kept at `info` or above unless
/// the user asks for `trace`.
fn filter_for(level: LogLevel) -> Targets {
    let ours = match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error | LogLevel::Critical => LevelFilter::ERROR,
        LogLevel::Off => LevelFilter::OFF,
    };
    let libraries = if level == LogLevel::Trace {
        ours
    } else {
        ours.min(LevelFilter::INFO)
    };
    Targets::new()
        .with_default(ours)
        .with_target("h2", libraries)
        .with_target("hyper", libraries)
        .with_target("hyper_util", libraries)
        .with_target("rustls", libraries)
        .with_target("tower", libraries)
        .with_target("tonic", libraries)
}

/// `2026-11-25 10:00:00 UTC | DOGD | INFO | (run.rs:42 in dogd::run) | message key=value`, the
/// agent's layout, so existing log parsers and habits carry over. The message is scrubbed, as the
/// agent's logger does, so a credential that slips into a log line does not reach the file.
struct AgentFormat {
    scrubber: Scrubber,
}

impl<S, N> FormatEvent<S, N> for AgentFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let file = meta
            .file()
            .and_then(|path| path.rsplit('/').next())
            .unwrap_or("?");
        let mut message = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut message), event)?;
        writeln!(
            writer,
            "{} | DOGD | {} | ({}:{} in {}) | {}",
            UtcTime::now(),
            meta.level(),
            file,
            meta.line().unwrap_or(0),
            meta.module_path().unwrap_or_else(|| meta.target()),
            self.scrubber.scrub_str(&message),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_maps_to_error_and_libraries_stay_quiet_at_debug() {
        let filter = filter_for(LogLevel::Debug);
        assert!(filter.would_enable("dogd", &tracing::Level::DEBUG));
        assert!(!filter.would_enable("h2", &tracing::Level::DEBUG));
        let critical = filter_for(LogLevel::Critical);
        assert!(!critical.would_enable("dogd", &tracing::Level::WARN));
        assert!(critical.would_enable("dogd", &tracing::Level::ERROR));
    }
}
