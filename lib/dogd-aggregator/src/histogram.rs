//! Histograms (`h` and `ms`): every sample kept with its weight for one bucket, summarized at
//! flush into the configured aggregates and percentiles, exactly as the agent computes them.

use crate::flush::SeriesType;

/// An aggregate a histogram can report (`histogram_aggregates`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// `.max`
    Max,
    /// `.min`
    Min,
    /// `.median` (weighted)
    Median,
    /// `.avg`
    Avg,
    /// `.sum`
    Sum,
    /// `.count`, sent as a rate over the interval.
    Count,
}

impl Aggregate {
    /// Parses a `histogram_aggregates` entry.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "max" => Self::Max,
            "min" => Self::Min,
            "median" => Self::Median,
            "avg" => Self::Avg,
            "sum" => Self::Sum,
            "count" => Self::Count,
            _ => return None,
        })
    }

    /// The series name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Max => ".max",
            Self::Min => ".min",
            Self::Median => ".median",
            Self::Avg => ".avg",
            Self::Sum => ".sum",
            Self::Count => ".count",
        }
    }
}

/// Parses a `histogram_percentiles` entry (`"0.95"`, or `"95"` as older configs wrote) into an
/// integer percent in 1..=100, as the agent does (`0.95` → 95, suffix `.95percentile`).
pub fn parse_percentile(text: &str) -> Option<u32> {
    let value: f64 = text.trim().parse().ok()?;
    let percent = if value <= 1.0 { value * 100.0 } else { value };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked range below"
    )]
    let percent = (percent + 1e-9).floor() as i64;
    (1..=100)
        .contains(&percent)
        .then(|| u32::try_from(percent).unwrap_or(0))
}

/// How histograms are summarized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSpec {
    /// Aggregates in configured order.
    pub aggregates: Vec<Aggregate>,
    /// Percentiles (1..=100), sorted.
    pub percentiles: Vec<u32>,
}

impl Default for HistogramSpec {
    /// The agent's defaults: `max, median, avg, count` and `0.95`.
    fn default() -> Self {
        Self {
            aggregates: vec![
                Aggregate::Max,
                Aggregate::Median,
                Aggregate::Avg,
                Aggregate::Count,
            ],
            percentiles: vec![95],
        }
    }
}

/// One bucket's samples of one histogram context.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    samples: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

/// The weight of a sample sent at `rate`: `int(1/rate)`, with 0 meaning 1 (as the agent).
pub fn weight_of(rate: f64) -> u64 {
    let rate = if rate <= 0.0 || !rate.is_finite() {
        1.0
    } else {
        rate
    };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "1/rate is positive; huge values saturate"
    )]
    let weight = (1.0 / rate) as u64;
    weight.max(1)
}

impl Histogram {
    /// Adds a sample sent at `rate`.
    pub fn add(&mut self, value: f64, rate: f64) {
        let weight = weight_of(rate);
        self.samples.push((value, weight));
        #[allow(clippy::cast_precision_loss, reason = "weights are small")]
        {
            self.sum += value * weight as f64;
        }
        self.count += weight;
    }

    /// The series for one bucket: `(suffix, type, value)` per aggregate then per percentile.
    pub fn summarize(
        &mut self,
        spec: &HistogramSpec,
        interval: i64,
    ) -> Vec<(String, SeriesType, f64)> {
        if self.samples.is_empty() {
            return Vec::new();
        }
        self.samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let count = self.count;
        #[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^53")]
        let countf = count as f64;
        let mut out = Vec::with_capacity(spec.aggregates.len() + spec.percentiles.len());
        for aggregate in &spec.aggregates {
            let (series_type, value) = match aggregate {
                Aggregate::Max => (SeriesType::Gauge, self.samples[self.samples.len() - 1].0),
                Aggregate::Min => (SeriesType::Gauge, self.samples[0].0),
                Aggregate::Median => (
                    SeriesType::Gauge,
                    self.weighted_rank((count.saturating_sub(1)) / 2),
                ),
                Aggregate::Avg => (SeriesType::Gauge, self.sum / countf),
                Aggregate::Sum => (SeriesType::Gauge, self.sum),
                #[allow(clippy::cast_precision_loss, reason = "the interval is small")]
                Aggregate::Count => (SeriesType::Rate, countf / interval as f64),
            };
            out.push((aggregate.suffix().to_owned(), series_type, value));
        }
        for percentile in &spec.percentiles {
            // The agent's target rank: (p * count - 1) / 100 in integer arithmetic.
            let target = (u64::from(*percentile) * count).saturating_sub(1) / 100;
            out.push((
                format!(".{percentile}percentile"),
                SeriesType::Gauge,
                self.weighted_rank(target),
            ));
        }
        out
    }

    /// The first sample whose cumulative weight exceeds `target`.
    fn weighted_rank(&self, target: u64) -> f64 {
        let mut weight = 0;
        for (value, sample_weight) in &self.samples {
            weight += sample_weight;
            if weight > target {
                return *value;
            }
        }
        self.samples.last().map_or(0.0, |(value, _)| *value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_parse_like_the_agent() {
        assert_eq!(parse_percentile("0.95"), Some(95));
        assert_eq!(parse_percentile("0.5"), Some(50));
        assert_eq!(parse_percentile("0.999"), Some(99));
        assert_eq!(parse_percentile("95"), Some(95));
        assert_eq!(parse_percentile("0"), None);
        assert_eq!(parse_percentile("1.5"), Some(1));
        assert_eq!(parse_percentile("abc"), None);
    }

    #[test]
    fn summarizes_one_to_ten_with_default_aggregates() {
        let mut histogram = Histogram::default();
        for value in [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 9.0, 8.0, 7.0, 6.0] {
            histogram.add(value, 1.0);
        }
        let out = histogram.summarize(&HistogramSpec::default(), 10);
        assert_eq!(
            out,
            vec![
                (".max".to_owned(), SeriesType::Gauge, 10.0),
                // count 10: target (10-1)/2 = 4 → the 5th smallest.
                (".median".to_owned(), SeriesType::Gauge, 5.0),
                (".avg".to_owned(), SeriesType::Gauge, 5.5),
                (".count".to_owned(), SeriesType::Rate, 1.0),
                // target (95*10-1)/100 = 9 → the 10th smallest.
                (".95percentile".to_owned(), SeriesType::Gauge, 10.0),
            ]
        );
    }

    #[test]
    fn sample_rate_weights_count_sum_and_ranks() {
        let mut histogram = Histogram::default();
        histogram.add(100.0, 0.5); // weight 2
        histogram.add(1.0, 1.0);
        let spec = HistogramSpec {
            aggregates: vec![
                Aggregate::Sum,
                Aggregate::Count,
                Aggregate::Median,
                Aggregate::Min,
            ],
            percentiles: vec![],
        };
        let out = histogram.summarize(&spec, 10);
        assert_eq!(out[0], (".sum".to_owned(), SeriesType::Gauge, 201.0));
        assert_eq!(out[1], (".count".to_owned(), SeriesType::Rate, 0.3));
        // count 3: target 1; cumulative weights 1 (value 1), 3 (value 100) → 100.
        assert_eq!(out[2], (".median".to_owned(), SeriesType::Gauge, 100.0));
        assert_eq!(out[3], (".min".to_owned(), SeriesType::Gauge, 1.0));
        assert_eq!(weight_of(0.0), 1);
        assert_eq!(weight_of(0.3), 3);
    }
}
