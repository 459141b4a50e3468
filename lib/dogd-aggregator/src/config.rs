//! The aggregator's settings, read from the configuration in one place.

use std::time::Duration;

use dogd_config::{Config, ConfigError};

use crate::histogram::{Aggregate, HistogramSpec, parse_percentile};
use crate::limiter::ContextLimitConfig;
use crate::sampler::SamplerConfig;

/// How samples are aggregated and flushed.
#[derive(Clone, Debug)]
pub struct AggregatorConfig {
    /// Buckets, histograms and counter expiry.
    pub sampler: SamplerConfig,
    /// How often closed buckets are flushed (15 s, the agent's flush interval).
    pub flush_interval: Duration,
    /// `aggregator_buffer_size` (default 100): sample batches queued before DogStatsD waits.
    pub queue_size: usize,
    /// Host tags (`tags` + `env:<env>`), added to every series and sketch for
    /// `host_tags_duration` after start (`expected_tags_duration`, default 0: never).
    pub host_tags: Vec<String>,
    /// `expected_tags_duration`.
    pub host_tags_duration: Duration,
    /// `dogstatsd_no_aggregation_pipeline_batch_size` (2048): timestamped samples sent as soon as
    /// this many are waiting.
    pub unaggregated_batch: usize,
}

impl AggregatorConfig {
    /// Reads the aggregator settings. An unknown histogram aggregate or percentile is an error
    /// naming it.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let mut histogram = HistogramSpec {
            aggregates: Vec::new(),
            percentiles: Vec::new(),
        };
        for name in config.get_string_list("histogram_aggregates")? {
            let aggregate = Aggregate::parse(&name).ok_or_else(|| {
                config.invalid_value(
                    "histogram_aggregates",
                    format!("{name:?}"),
                    "use max, min, median, avg, sum or count",
                )
            })?;
            histogram.aggregates.push(aggregate);
        }
        for text in config.get_string_list("histogram_percentiles")? {
            let percent = parse_percentile(&text).ok_or_else(|| {
                config.invalid_value(
                    "histogram_percentiles",
                    format!("{text:?}"),
                    "use a fraction between 0 and 1 such as 0.95",
                )
            })?;
            histogram.percentiles.push(percent);
        }
        histogram.percentiles.sort_unstable();
        histogram.percentiles.dedup();
        let mut host_tags = config.get_string_list("tags")?;
        if let Some(env) = config.get_string("env")? {
            host_tags.push(format!("env:{env}"));
        }
        Ok(Self {
            sampler: SamplerConfig {
                interval: 10,
                histogram,
                counter_expiry_seconds: config
                    .get_duration("dogstatsd_expiry_seconds")?
                    .as_secs_f64(),
                context_expiry_seconds: config
                    .get_duration("dogstatsd_context_expiry_seconds")?
                    .as_secs_f64(),
                context_limit: Some(ContextLimitConfig {
                    limit: usize::try_from(config.get_int("dogstatsd_context_limiter.limit")?)
                        .unwrap_or(0),
                    key_tag_name: config
                        .get_string("dogstatsd_context_limiter.key_tag_name")?
                        .unwrap_or_else(|| "pod_name".to_owned()),
                    entry_timeout: u64::try_from(
                        config.get_int("dogstatsd_context_limiter.entry_timeout")?,
                    )
                    .unwrap_or(1),
                })
                .filter(|limit| limit.limit > 0),
            },
            flush_interval: Duration::from_secs(15),
            queue_size: usize::try_from(config.get_int("aggregator_buffer_size")?)
                .unwrap_or(100)
                .max(1),
            host_tags,
            host_tags_duration: config.get_duration("expected_tags_duration")?,
            unaggregated_batch: usize::try_from(
                config.get_int("dogstatsd_no_aggregation_pipeline_batch_size")?,
            )
            .unwrap_or(2048)
            .max(1),
        })
    }
}
