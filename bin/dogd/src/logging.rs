//! Log setup: the agent's line format, to stderr and/or `log_file`, with a level that can be changed
//! while running.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use dogd_config::{LogConfig, LogLevel};
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

/// Installs the global subscriber. Call once, before anything logs.
pub(crate) fn init(config: &LogConfig) -> anyhow::Result<LogLevelControl> {
    let (filter, handle) = reload::Layer::new(filter_for(config.level));
    let writer = make_writer(config)?;
    let format = tracing_subscriber::fmt::layer()
        .event_format(AgentFormat)
        .with_ansi(false)
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .try_init()
        .context("a logger is already installed")?;
    Ok(LogLevelControl { handle })
}

fn make_writer(config: &LogConfig) -> anyhow::Result<BoxMakeWriter> {
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
    Ok(match (config.to_console, file) {
        (true, Some(file)) => BoxMakeWriter::new(std::io::stderr.and(file)),
        (false, Some(file)) => BoxMakeWriter::new(file),
        (true, None) => BoxMakeWriter::new(std::io::stderr),
        (false, None) => BoxMakeWriter::new(std::io::sink),
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
/// agent's layout, so existing log parsers and habits carry over.
struct AgentFormat;

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
        write!(
            writer,
            "{} | DOGD | {} | ({}:{} in {}) | ",
            utc_timestamp(SystemTime::now()),
            meta.level(),
            file,
            meta.line().unwrap_or(0),
            meta.module_path().unwrap_or_else(|| meta.target()),
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Formats a time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_timestamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(23);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_times() {
        let at = |secs| utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01 00:00:00 UTC");
        // 2026-11-25 10:00:00 UTC
        assert_eq!(at(1_795_600_800), "2026-11-25 10:00:00 UTC");
        // Leap day.
        assert_eq!(at(951_782_400), "2000-02-29 00:00:00 UTC");
    }

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
