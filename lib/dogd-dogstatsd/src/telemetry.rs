//! The server's internal telemetry, resolved once so the hot path only increments atomics. Names
//! follow the agent's (`dogstatsd__processed`, `dogstatsd__udp_packets`, ...).

use dogd_telemetry::{Counter, CounterVec, Registry, TelemetryError};

use crate::listener::{ListenerCounters, Transport};

/// Every counter the listeners and parsers update.
#[derive(Clone, Debug)]
pub(crate) struct DsdTelemetry {
    processed: CounterVec,
    parse_errors: CounterVec,
    /// `processed{state=ok}` for metrics, events, service checks.
    pub(crate) metrics_ok: Counter,
    pub(crate) events_ok: Counter,
    pub(crate) service_checks_ok: Counter,
    /// `metric_type_count` by [`crate::parse::MetricType`] (see [`Self::metric_type`]).
    metric_types: [Counter; 6],
    pub(crate) unterminated: Counter,
    pub(crate) udp: ListenerCounters,
    pub(crate) uds: ListenerCounters,
    pub(crate) uds_stream: ListenerCounters,
    pub(crate) samples: Counter,
}

impl DsdTelemetry {
    pub(crate) fn new(registry: &Registry) -> Result<Self, TelemetryError> {
        let processed = registry.counter(
            "dogstatsd__processed",
            "DogStatsD messages processed, by type and outcome.",
            &["message_type", "state"],
        )?;
        let metric_types = registry.counter(
            "dogstatsd__metric_type_count",
            "DogStatsD metric samples parsed, by metric type.",
            &["metric_type"],
        )?;
        let parse_errors = registry.counter(
            "dogstatsd__parse_errors",
            "DogStatsD messages dropped as malformed, by type and reason.",
            &["message_type", "reason"],
        )?;
        let unterminated = registry
            .counter(
                "dogstatsd__unterminated_metric_errors",
                "Trailing messages dropped for lacking a newline where one is required.",
                &[],
            )?
            .with(&[]);
        let udp_packets = registry.counter(
            "dogstatsd__udp_packets",
            "UDP reads, by outcome.",
            &["state"],
        )?;
        let udp_bytes =
            registry.counter("dogstatsd__udp_packets_bytes", "Bytes read over UDP.", &[])?;
        let uds_packets = registry.counter(
            "dogstatsd__uds_packets",
            "Unix socket reads, by transport and outcome.",
            &["transport", "state"],
        )?;
        let uds_bytes = registry.counter(
            "dogstatsd__uds_packets_bytes",
            "Bytes read over Unix sockets, by transport.",
            &["transport"],
        )?;
        let origin_errors = registry.counter(
            "dogstatsd__uds_origin_detection_error",
            "Unix socket packets whose sender could not be identified.",
            &["transport"],
        )?;
        let dropped = registry.counter(
            "dogstatsd__packets_dropped",
            "Packets dropped because the parsers' queue stayed full.",
            &["transport"],
        )?;
        let listener = |transport: Transport| {
            let label = transport.label();
            match transport {
                Transport::Udp => ListenerCounters {
                    packets: udp_packets.with(&["ok"]),
                    bytes: udp_bytes.with(&[]),
                    read_errors: udp_packets.with(&["error"]),
                    dropped: dropped.with(&[label]),
                    origin_errors: origin_errors.with(&[label]),
                },
                Transport::UnixDatagram | Transport::UnixStream => ListenerCounters {
                    packets: uds_packets.with(&[label, "ok"]),
                    bytes: uds_bytes.with(&[label]),
                    read_errors: uds_packets.with(&[label, "error"]),
                    dropped: dropped.with(&[label]),
                    origin_errors: origin_errors.with(&[label]),
                },
            }
        };
        let samples = registry
            .counter(
                "dogstatsd__samples_accepted",
                "Metric samples handed to the aggregator.",
                &[],
            )?
            .with(&[]);
        let type_counter = |label: &str| metric_types.with(&[label]);
        Ok(Self {
            metrics_ok: processed.with(&["metrics", "ok"]),
            events_ok: processed.with(&["events", "ok"]),
            service_checks_ok: processed.with(&["service_checks", "ok"]),
            metric_types: [
                type_counter("counter"),
                type_counter("gauge"),
                type_counter("histogram"),
                type_counter("timing"),
                type_counter("distribution"),
                type_counter("set"),
            ],
            udp: listener(Transport::Udp),
            uds: listener(Transport::UnixDatagram),
            uds_stream: listener(Transport::UnixStream),
            processed,
            parse_errors,
            unterminated,
            samples,
        })
    }

    /// `processed{state=error}` (errors are rare: resolved when they happen).
    pub(crate) fn failed(&self, message_type: &str) -> Counter {
        self.processed.with(&[message_type, "error"])
    }

    pub(crate) fn metric_type(&self, metric_type: crate::parse::MetricType) -> &Counter {
        use crate::parse::MetricType;
        let index = match metric_type {
            MetricType::Counter => 0,
            MetricType::Gauge => 1,
            MetricType::Histogram => 2,
            MetricType::Timer => 3,
            MetricType::Distribution => 4,
            MetricType::Set => 5,
        };
        &self.metric_types[index]
    }

    /// Samples counted by type, for the status page.
    pub(crate) fn metric_type_counts(&self) -> [(&'static str, u64); 6] {
        let labels = [
            "counter",
            "gauge",
            "histogram",
            "timing",
            "distribution",
            "set",
        ];
        let mut out = [("", 0); 6];
        for (slot, (label, counter)) in out.iter_mut().zip(labels.iter().zip(&self.metric_types)) {
            *slot = (label, counter.get());
        }
        out
    }

    pub(crate) fn parse_error(&self, message_type: &str, reason: &str) -> Counter {
        self.parse_errors.with(&[message_type, reason])
    }
}
