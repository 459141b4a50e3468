//! The aggregator component: takes sample batches from DogStatsD (it is their [`SampleSink`]),
//! keeps them in the time sampler, and every flush interval hands what closed to a
//! [`FlushSink`]. On stop it drains its queue and flushes everything, the open bucket included,
//! so a sample accepted before the stop is sent.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dogd_api::StatusProvider;
use dogd_core::{BoxError, Component, StartContext};
use dogd_dogstatsd::sample::{SampleBatch, SampleSink};
use dogd_telemetry::{Counter, Gauge, Histogram as LatencyHistogram, Registry, TelemetryError};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::AggregatorConfig;
use crate::flush::{Flush, FlushSink};
use crate::sampler::TimeSampler;

/// Feeds the aggregator; DogStatsD holds it as its sample sink. Waits when the queue is full,
/// which pushes back on DogStatsD's own bounded queue (where overflow is dropped and counted).
#[derive(Clone, Debug)]
pub struct AggregatorInput {
    sender: mpsc::Sender<SampleBatch>,
}

#[async_trait]
impl SampleSink for AggregatorInput {
    async fn accept(&self, batch: SampleBatch) {
        // Closed only after the aggregator stopped, when nothing more can be accepted anyway.
        let _ = self.sender.send(batch).await;
    }
}

/// Figures for the status page.
#[derive(Debug, Default)]
struct Progress {
    flushes: u64,
    last_flush_unix: Option<i64>,
    last_flush_duration: Option<Duration>,
    contexts: usize,
    series: u64,
    sketches: u64,
    events: u64,
    service_checks: u64,
    unaggregated_points: u64,
    type_mismatch: u64,
    unsupported_timestamped: u64,
    samples_received: u64,
    context_limit: u64,
}

#[derive(Clone, Debug)]
struct Telemetry {
    contexts: Gauge,
    flushed_series: Counter,
    flushed_sketches: Counter,
    flushed_events: Counter,
    flushed_service_checks: Counter,
    unaggregated_ok: Counter,
    unaggregated_unsupported: Counter,
    flush_duration: LatencyHistogram,
}

impl Telemetry {
    fn new(registry: &Registry) -> Result<Self, TelemetryError> {
        let flushed = registry.counter(
            "aggregator__flushed",
            "Items flushed by the aggregator, by kind.",
            &["kind"],
        )?;
        let no_agg = registry.counter(
            "no_aggregation__processed",
            "Timestamped samples through the no-aggregation pipeline, by outcome.",
            &["state"],
        )?;
        Ok(Self {
            contexts: registry
                .gauge(
                    "aggregator__dogstatsd_contexts",
                    "DogStatsD contexts held by the aggregator.",
                    &[],
                )?
                .with(&[]),
            flushed_series: flushed.with(&["series"]),
            flushed_sketches: flushed.with(&["sketches"]),
            flushed_events: flushed.with(&["events"]),
            flushed_service_checks: flushed.with(&["service_checks"]),
            unaggregated_ok: no_agg.with(&["ok"]),
            unaggregated_unsupported: no_agg.with(&["unsupported_type"]),
            flush_duration: registry
                .histogram(
                    "aggregator__flush_duration_seconds",
                    "Time to compute a flush.",
                    &[],
                    dogd_telemetry::DEFAULT_BUCKETS,
                )?
                .with(&[]),
        })
    }
}

/// The aggregator component (`aggregator`).
pub struct Aggregator {
    config: AggregatorConfig,
    sender: mpsc::Sender<SampleBatch>,
    receiver: Option<mpsc::Receiver<SampleBatch>>,
    sink: Arc<dyn FlushSink>,
    telemetry: Telemetry,
    progress: Arc<Mutex<Progress>>,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    /// An aggregator flushing into `sink`.
    pub fn new(
        config: AggregatorConfig,
        sink: Arc<dyn FlushSink>,
        registry: &Registry,
    ) -> Result<Self, TelemetryError> {
        let (sender, receiver) = mpsc::channel(config.queue_size);
        Ok(Self {
            config,
            sender,
            receiver: Some(receiver),
            sink,
            telemetry: Telemetry::new(registry)?,
            progress: Arc::default(),
        })
    }

    /// The sample sink DogStatsD feeds.
    pub fn input(&self) -> AggregatorInput {
        AggregatorInput {
            sender: self.sender.clone(),
        }
    }

    /// The `aggregator` status section.
    pub fn status(&self) -> AggregatorStatus {
        AggregatorStatus {
            progress: self.progress.clone(),
            queue: self.sender.clone(),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// The running loop's state.
struct Running {
    config: AggregatorConfig,
    sampler: TimeSampler,
    pending: Flush,
    sink: Arc<dyn FlushSink>,
    telemetry: Telemetry,
    progress: Arc<Mutex<Progress>>,
    started: Instant,
    last_sample: Instant,
    /// Metric samples taken from DogStatsD since start.
    samples_received: u64,
}

impl Running {
    fn accept(&mut self, batch: SampleBatch) {
        let now = unix_now();
        #[allow(clippy::cast_possible_truncation, reason = "Unix seconds fit i64")]
        let now_secs = now as i64;
        for sample in &batch.samples {
            self.sampler.add(sample, now);
        }
        self.samples_received += batch.samples.len() as u64;
        // The agent stamps events and service checks without a date with their arrival time.
        for mut event in batch.events {
            if event.timestamp.is_none_or(|ts| ts == 0) {
                event.timestamp = Some(now_secs);
            }
            self.pending.events.push(event);
        }
        for mut check in batch.service_checks {
            if check.timestamp.is_none_or(|ts| ts == 0) {
                check.timestamp = Some(now_secs);
            }
            self.pending.service_checks.push(check);
        }
        self.last_sample = Instant::now();
    }

    /// Host tags go on every series while `expected_tags_duration` lasts.
    fn host_tags_apply(&self) -> bool {
        !self.config.host_tags.is_empty() && self.started.elapsed() < self.config.host_tags_duration
    }

    fn with_host_tags(&self, mut flush: Flush) -> Flush {
        if !self.host_tags_apply() {
            return flush;
        }
        let extra: Vec<Arc<str>> = self
            .config
            .host_tags
            .iter()
            .map(|tag| Arc::from(tag.as_str()))
            .collect();
        let merge = |tags: &Arc<[Arc<str>]>| -> Arc<[Arc<str>]> {
            let mut all: Vec<Arc<str>> =
                tags.iter().cloned().chain(extra.iter().cloned()).collect();
            all.sort();
            all.dedup();
            all.into()
        };
        for serie in &mut flush.series {
            serie.tags = merge(&serie.tags);
        }
        for sketch in &mut flush.sketches {
            sketch.tags = merge(&sketch.tags);
        }
        flush
    }

    /// Flushes closed buckets (all buckets when `everything`, at stop).
    async fn flush(&mut self, everything: bool) {
        let started = Instant::now();
        let now = unix_now();
        #[allow(clippy::cast_precision_loss, reason = "the interval is small")]
        let horizon = if everything {
            now + self.config.sampler.interval as f64
        } else {
            now
        };
        let (mut series, sketches) = self.sampler.flush(horizon);
        series.extend(self.sampler.take_unaggregated());
        let mut flush = std::mem::take(&mut self.pending);
        #[allow(clippy::cast_possible_truncation, reason = "Unix seconds fit i64")]
        {
            flush.timestamp = now as i64;
        }
        flush.series = series;
        flush.sketches = sketches;
        self.record(&flush, started.elapsed());
        if !flush.is_empty() {
            let flush = self.with_host_tags(flush);
            self.sink.flush(flush).await;
        }
    }

    /// Sends the timestamped samples waiting, without touching the buckets.
    async fn flush_unaggregated(&mut self) {
        let series = self.sampler.take_unaggregated();
        if series.is_empty() {
            return;
        }
        #[allow(clippy::cast_possible_truncation, reason = "Unix seconds fit i64")]
        let flush = Flush {
            timestamp: unix_now() as i64,
            series,
            ..Flush::default()
        };
        self.record(&flush, Duration::ZERO);
        let flush = self.with_host_tags(flush);
        self.sink.flush(flush).await;
    }

    fn record(&self, flush: &Flush, took: Duration) {
        let refused = self.sampler.refused();
        let unaggregated = flush
            .series
            .iter()
            .filter(|serie| serie.unaggregated)
            .count() as u64;
        self.telemetry
            .flushed_series
            .add(flush.series.len() as u64 - unaggregated);
        self.telemetry
            .flushed_sketches
            .add(flush.sketches.len() as u64);
        self.telemetry.flushed_events.add(flush.events.len() as u64);
        self.telemetry
            .flushed_service_checks
            .add(flush.service_checks.len() as u64);
        self.telemetry.unaggregated_ok.add(unaggregated);
        let contexts = self.sampler.live_contexts();
        #[allow(
            clippy::cast_precision_loss,
            reason = "context counts are far below 2^53"
        )]
        self.telemetry.contexts.set(contexts as f64);
        if took > Duration::ZERO {
            self.telemetry.flush_duration.observe(took.as_secs_f64());
        }
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let unsupported_new = refused
            .unsupported_timestamped
            .saturating_sub(progress.unsupported_timestamped);
        self.telemetry.unaggregated_unsupported.add(unsupported_new);
        progress.flushes += 1;
        progress.samples_received = self.samples_received;
        progress.last_flush_unix = Some(flush.timestamp);
        if took > Duration::ZERO {
            progress.last_flush_duration = Some(took);
        }
        progress.contexts = contexts;
        progress.series += flush.series.len() as u64 - unaggregated;
        progress.sketches += flush.sketches.len() as u64;
        progress.events += flush.events.len() as u64;
        progress.service_checks += flush.service_checks.len() as u64;
        progress.unaggregated_points += unaggregated;
        progress.type_mismatch = refused.type_mismatch;
        progress.unsupported_timestamped = refused.unsupported_timestamped;
        progress.context_limit = refused.context_limit;
    }
}

#[async_trait]
impl Component for Aggregator {
    fn name(&self) -> &str {
        "aggregator"
    }

    fn health_interval(&self) -> Option<Duration> {
        // The loop checks in at every flush; two missed flushes mean it is stuck.
        Some(self.config.flush_interval * 2 + Duration::from_secs(5))
    }

    async fn start(&mut self, ctx: StartContext) -> Result<(), BoxError> {
        let Some(mut receiver) = self.receiver.take() else {
            return Err("the aggregator cannot be started twice".into());
        };
        let mut running = Running {
            config: self.config.clone(),
            sampler: TimeSampler::new(self.config.sampler.clone()),
            pending: Flush::default(),
            sink: self.sink.clone(),
            telemetry: self.telemetry.clone(),
            progress: self.progress.clone(),
            started: Instant::now(),
            last_sample: Instant::now(),
            samples_received: 0,
        };
        let shutdown = ctx.shutdown().clone();
        let health = ctx.health().clone();
        let flush_interval = self.config.flush_interval;
        let batch_limit = self.config.unaggregated_batch;
        health.report_healthy();
        ctx.spawn(async move {
            let mut flush_ticker = tokio::time::interval_at(tokio::time::Instant::now() + flush_interval, flush_interval);
            let mut unaggregated_ticker = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    batch = receiver.recv() => match batch {
                        Some(batch) => {
                            running.accept(batch);
                            if running.sampler.unaggregated_len() >= batch_limit {
                                running.flush_unaggregated().await;
                            }
                        }
                        None => break,
                    },
                    _ = flush_ticker.tick() => {
                        running.flush(false).await;
                        health.report_healthy();
                    }
                    _ = unaggregated_ticker.tick() => {
                        // Timestamped samples go out once the stream pauses for a second.
                        if running.sampler.unaggregated_len() > 0 && running.last_sample.elapsed() >= Duration::from_secs(1) {
                            running.flush_unaggregated().await;
                        }
                    }
                    () = shutdown.cancelled() => break,
                }
            }
            // Everything DogStatsD handed over before stopping is still queued: take it, then
            // flush every bucket, the open one included.
            receiver.close();
            while let Some(batch) = receiver.recv().await {
                running.accept(batch);
            }
            running.flush(true).await;
            tracing::info!(
                "aggregator flushed everything it held ({} metric samples received since start)",
                running.samples_received
            );
        });
        Ok(())
    }
}

/// The `aggregator` status section.
#[derive(Debug)]
pub struct AggregatorStatus {
    progress: Arc<Mutex<Progress>>,
    queue: mpsc::Sender<SampleBatch>,
}

impl StatusProvider for AggregatorStatus {
    fn section(&self) -> &str {
        "aggregator"
    }

    fn title(&self) -> &str {
        "Aggregator"
    }

    fn status(&self) -> Value {
        let progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        json!({
            "flushes": progress.flushes,
            "samples_received": progress.samples_received,
            "last_flush": progress.last_flush_unix.map(|ts| {
                dogd_core::clock::UtcTime::of(UNIX_EPOCH + Duration::from_secs(u64::try_from(ts).unwrap_or(0))).rfc3339()
            }),
            "last_flush_duration_ms": progress.last_flush_duration.map(|d| d.as_secs_f64() * 1e3),
            "dogstatsd_contexts": progress.contexts,
            "series_flushed": progress.series,
            "sketches_flushed": progress.sketches,
            "events_flushed": progress.events,
            "service_checks_flushed": progress.service_checks,
            "timestamped_points_flushed": progress.unaggregated_points,
            "samples_refused": {
                "type_mismatch": progress.type_mismatch,
                "timestamped_unsupported_type": progress.unsupported_timestamped,
                "context_limit": progress.context_limit,
            },
            "queue": {
                "batches_waiting": self.queue.max_capacity() - self.queue.capacity(),
                "capacity": self.queue.max_capacity(),
            },
        })
    }
}
