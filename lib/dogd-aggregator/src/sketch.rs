//! The agent's DDSketch for distributions, bin for bin.
//!
//! The intake decodes sketches as the agent builds them (`pkg/util/quantile`, formerly
//! `pkg/quantile`, in DataDog/datadog-agent), so this module follows that code rather than the
//! DDSketch paper or `sketches-go`:
//!
//! * γ = 1 + 2ε with ε = 1/128, so γ = 1.015625 and ln γ = `Log1p(2ε)`.
//! * `bias = 1 − ⌊ln(1e-9)/ln γ⌋ = 1338`, so that the smallest indexable value, γ^(1−bias)
//!   (≈ 9.94e-10, slightly below 1e-9), has key 1.
//! * `key(v) = round_half_even(ln v / ln γ) + bias` for `v ≥ γ^(1−bias)`, `−key(−v)` for negative
//!   values, 0 in between. A key above 32766 becomes 32767, the key the agent keeps for +∞ (the
//!   keys are `int16`, one slot being reserved for ±∞); finite values from about 4.17e211 up
//!   already land there.
//! * A key stands for γ^(key−bias), the middle of its bin on a log scale (the agent's `f64`).
//! * Bins are kept sorted by key, each counting at most 65535 observations (`uint16`); a key
//!   with more spans several bins, a partial one first, then full ones. (Branches of the agent
//!   repository try 32-bit bins; they would differ only for keys past 65535 observations.)
//! * Past 4096 bins, the lowest bins collapse into the lowest bin kept (`trimLeft`), with the
//!   agent's handling of counts that no longer fit in that bin.
//! * A summary (count, min, max, sum, avg) is kept exactly as the agent's `summary.Summary` does,
//!   including its incremental average.
//!
//! The logarithm and power are ports of Go's `math.Log` (amd64 assembly) and `math.Pow`, so
//! that keys and key values agree with the agent's to the last bit, not only to an ulp.
//!
//! # Buffering
//!
//! Like the agent's `quantile.Agent`, a sketch buffers the keys of unsampled values (up to 512)
//! and folds them into its bins in one sorted batch; a weighted insert flushes the buffer first,
//! then adds its count. Folding keys one by one would give the same bins as long as no bin
//! overflows 65535 while the bin limit is collapsing bins, but in that corner the agent's result
//! depends on its batches, so we keep its batches and are equal by construction. Readers
//! (`bins`, `quantile`, `merge`, `==`) see the buffer folded in, as the agent's `Finish` does.
//!
//! # Where we part from the agent
//!
//! * Non-finite values are ignored: the agent's aggregator drops them before they reach a
//!   sketch (`sketchMap.insert`), and its key for them is platform-dependent.
//! * A sample rate that is NaN counts as 1, as rates outside (0, 1] do (the agent would weigh
//!   the sample NaN).
//! * A weighted insert adds to the bins at most what keeps their total within 4096 × 65535
//!   observations (the agent's `Config.MaxCount`); the summary still counts every observation.
//!   Up to that total the agent's bins stay within 2 × 4096 + 1; past it, a single sample at a
//!   very low rate makes the agent allocate one bin per 65535 observations it stands for.
//! * Counts are saturated rather than wrapped.

use std::borrow::Cow;
use std::fmt;

/// Keys of unsampled values buffered before they reach the bins (`agentBufCap`).
const AGENT_BUF_CAP: usize = 512;

/// Bins kept before the lowest ones collapse (`defaultBinLimit`).
const BIN_LIMIT: usize = 4096;

/// Observations one bin can count (`maxBinWidth`, a `uint16`).
const MAX_BIN_WIDTH: u16 = u16::MAX;

/// The largest finite key (`maxKey`).
pub const MAX_KEY: i32 = 32766;

/// The key of +∞, and of finite values past the largest finite key (`uvinf`); −∞ is its
/// negation.
pub const INF_KEY: i32 = 32767;

/// The most observations the bins of a sketch take from weighted inserts: the agent's
/// `Config.MaxCount()`, the count up to which its bins stay bounded.
pub const MAX_COUNT: u64 = BIN_LIMIT as u64 * MAX_BIN_WIDTH as u64;

/// The relative accuracy of a key's value, ε.
pub const RELATIVE_ACCURACY: f64 = 1.0 / 128.0;

/// The ratio between the values of consecutive keys, γ = 1 + 2ε.
pub const GAMMA: f64 = 1.0 + 2.0 * RELATIVE_ACCURACY;

/// ln γ, computed as the agent does (`math.Log1p(2ε)`).
const GAMMA_LN: f64 = go_log1p_small(2.0 * RELATIVE_ACCURACY);

/// The smallest value the agent distinguishes from zero is `MIN_VALUE` rounded down to a power
/// of γ (`defaultMin`).
const MIN_VALUE: f64 = 1e-9;

/// The exponent bias that gives the smallest indexable value the key 1.
#[allow(
    clippy::cast_possible_truncation,
    reason = "the floor of ln(1e-9)/ln γ is about −1337"
)]
const BIAS: i32 = 1 - (go_log(MIN_VALUE) / GAMMA_LN).floor() as i32;

/// γ^(1−bias): values below it in magnitude have the key 0 (the agent's `norm.min`).
const NORM_MIN: f64 = go_pow_int(GAMMA, 1 - BIAS);

// The agent's sanity check, at compile time: `norm.min` is the power of γ just below 1e-9.
const _: () = assert!(NORM_MIN <= MIN_VALUE && NORM_MIN * GAMMA > MIN_VALUE);

/// One bin: a key and how many observations it counts.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Bin {
    k: i16,
    n: u16,
}

impl fmt::Debug for Bin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.k, self.n)
    }
}

/// The exact statistics the agent keeps beside the bins (`summary.Summary`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Summary {
    min: f64,
    max: f64,
    sum: f64,
    avg: f64,
    cnt: i64,
}

impl Summary {
    /// `Summary.Insert`: the average moves incrementally, as the agent's does.
    fn insert(&mut self, v: f64) {
        if v > self.max || self.cnt == 0 {
            self.max = v;
        }
        if v < self.min || self.cnt == 0 {
            self.min = v;
        }
        self.cnt = self.cnt.saturating_add(1);
        self.sum += v;
        self.avg += (v - self.avg) / count_f64(self.cnt);
    }

    /// `Summary.InsertN`: the count takes the truncated weight, the sum the weight itself.
    fn insert_n(&mut self, v: f64, weight: f64) {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "Go's int64(n); Rust saturates where Go's is platform-defined"
        )]
        let cnt = weight as i64;
        self.merge(&Summary {
            min: v,
            max: v,
            sum: weight * v,
            avg: v,
            cnt,
        });
    }

    /// `Summary.Merge`.
    fn merge(&mut self, o: &Summary) {
        if self.cnt == 0 {
            *self = *o;
            return;
        }
        if o.cnt == 0 {
            return;
        }
        if o.max > self.max {
            self.max = o.max;
        }
        if o.min < self.min {
            self.min = o.min;
        }
        self.cnt = self.cnt.saturating_add(o.cnt);
        self.sum += o.sum;
        self.avg += (o.avg - self.avg) * count_f64(o.cnt) / count_f64(self.cnt);
    }
}

#[allow(clippy::cast_precision_loss, reason = "Go's float64(cnt)")]
fn count_f64(cnt: i64) -> f64 {
    cnt as f64
}

/// A distribution's sketch, as the agent builds it for one context and one 10-second bucket.
///
/// 88 bytes, plus four bytes a bin and, between flushes, two bytes a buffered value.
#[derive(Clone, Debug, Default)]
pub struct AgentSketch {
    /// Sorted by key; a key's partial bin comes before its full ones.
    bins: Vec<Bin>,
    /// Keys of unsampled values not yet in the bins (the agent's `Buf`).
    buf: Vec<i16>,
    summary: Summary,
}

impl PartialEq for AgentSketch {
    /// Equal when the agent would send the same sketch: same summary and, buffers folded in,
    /// same bins.
    fn eq(&self, other: &Self) -> bool {
        self.summary == other.summary && self.flushed() == other.flushed()
    }
}

impl AgentSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one observation (the agent's `Insert(v, 1)`). Non-finite values are ignored, as the
    /// agent's aggregator drops them.
    pub fn insert(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.summary.insert(value);
        self.buf.push(key_of(value));
        if self.buf.len() >= AGENT_BUF_CAP {
            self.flush();
        }
    }

    /// Adds a DogStatsD distribution sample sent with `@sample_rate`, as the agent's
    /// `Agent.Insert(v, rate)` does: a rate outside (0, 1) (NaN included) counts as 1; otherwise
    /// the sample weighs `1/rate`, the count and the bins taking that weight truncated and the
    /// sum taking it whole.
    pub fn insert_sampled(&mut self, value: f64, sample_rate: f64) {
        if !(sample_rate > 0.0 && sample_rate < 1.0) {
            self.insert(value);
            return;
        }
        if !value.is_finite() {
            return;
        }
        let weight = 1.0 / sample_rate;
        self.summary.insert_n(value, weight);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "Go's uint(n); weight > 1, huge ones saturate"
        )]
        let count = weight as u64;
        self.insert_count(key_of(value), count);
    }

    /// Adds `n` observations of `value` at once, as the agent adds a weighted sample
    /// (`Summary.InsertN` and one counted key). `insert_n(v, 1)` is `insert(v)`; `insert_n(v, 0)`
    /// does nothing.
    pub fn insert_n(&mut self, value: f64, n: u32) {
        match n {
            0 => {}
            1 => self.insert(value),
            _ if !value.is_finite() => {}
            _ => {
                self.summary.insert_n(value, f64::from(n));
                self.insert_count(key_of(value), u64::from(n));
            }
        }
    }

    /// Folds the buffered keys into the bins, as the agent's `Finish` does before a sketch is
    /// serialized. Reading a sketch does not need it; it only saves readers a copy.
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            // The agent drops its buffer after a flush (`Buf = nil`): a sketch at rest keeps no
            // spare capacity.
            let mut keys = std::mem::take(&mut self.buf);
            insert_keys(&mut self.bins, &mut keys, BIN_LIMIT);
        }
    }

    /// Merges `other` into this sketch (the agent's `Sketch.Merge`).
    pub fn merge(&mut self, other: &AgentSketch) {
        self.flush();
        self.summary.merge(&other.summary);
        merge_bins(&mut self.bins, &other.flushed(), BIN_LIMIT);
    }

    /// How many observations the sketch holds (Dogsketch `cnt`).
    pub fn count(&self) -> u64 {
        u64::try_from(self.summary.cnt).unwrap_or(0)
    }

    /// The smallest observation (Dogsketch `min`); 0 for an empty sketch.
    pub fn min(&self) -> f64 {
        self.summary.min
    }

    /// The largest observation (Dogsketch `max`); 0 for an empty sketch.
    pub fn max(&self) -> f64 {
        self.summary.max
    }

    /// The sum of the observations (Dogsketch `sum`); 0 for an empty sketch.
    pub fn sum(&self) -> f64 {
        self.summary.sum
    }

    /// The agent's running average of the observations (Dogsketch `avg`), which can differ from
    /// `sum / count` in the last bits; 0 for an empty sketch.
    pub fn avg(&self) -> f64 {
        self.summary.avg
    }

    /// Whether the sketch holds no observation (the agent then sends no Dogsketch for it).
    pub fn is_empty(&self) -> bool {
        self.summary.cnt == 0 && self.buf.is_empty()
    }

    /// The value at quantile `q`, interpolated as the agent's `Sketch.Quantile` does: `min` for
    /// `q ≤ 0`, `max` for `q ≥ 1`, otherwise, for the bin holding rank `round_half_even(q·(n−1))`,
    /// a point between its key's value (`min` for the first bin) and γ times it. That is within
    /// γ^1.5 − 1 (2.4 %) of the exact quantile, not within ε; [`key_to_value`] of that bin's key
    /// is within ε. `None` when no bin holds an observation.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let bins = self.flushed();
        let count: u64 = bins.iter().map(|b| u64::from(b.n)).sum();
        if count == 0 {
            return None;
        }
        if q <= 0.0 {
            return Some(self.summary.min);
        }
        if q >= 1.0 {
            return Some(self.summary.max);
        }
        #[allow(clippy::cast_precision_loss, reason = "Go's float64(count-1)")]
        let rank = (q * (count - 1) as f64).round_ties_even();
        let mut n = 0.0;
        for (i, b) in bins.iter().enumerate() {
            n += f64::from(b.n);
            if n <= rank {
                continue;
            }
            let weight = (n - rank) / f64::from(b.n);
            let mut low = key_to_value(i32::from(b.k));
            let high = low * GAMMA;
            if i == 0 {
                low = self.summary.min;
            }
            return Some(low * weight + high * (1.0 - weight));
        }
        // Only when the rank is NaN: the agent then answers with the maximum.
        Some(self.summary.max)
    }

    /// Bin keys and counts as the Dogsketch `k` (sint32) and `n` (uint32) fields (the agent's
    /// `Cols`), sorted by key; a key counting more than 65535 observations appears several times.
    pub fn bins(&self) -> (Vec<i32>, Vec<u32>) {
        let bins = self.flushed();
        (
            bins.iter().map(|b| i32::from(b.k)).collect(),
            bins.iter().map(|b| u32::from(b.n)).collect(),
        )
    }

    /// Rebuilds a sketch from the fields of a Dogsketch, to decode payloads. The bins are taken
    /// as they are, so an agent's sketch comes back bin for bin: not trimmed to the bin limit.
    /// Keys past ±32767 are clamped to it, unsorted keys are sorted, counts of zero are dropped
    /// and counts past 65535 are split as the agent splits them; a count or a key list longer
    /// than the other is cut to the shorter. The average is `sum / count`; [`Self::with_avg`]
    /// sets the one a payload carries.
    pub fn from_parts(
        keys: &[i32],
        counts: &[u32],
        count: u64,
        min: f64,
        max: f64,
        sum: f64,
    ) -> Self {
        let mut pairs: Vec<(i16, u32)> = keys
            .iter()
            .zip(counts)
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (clamp_key(*k), *n))
            .collect();
        // Stable, so that a key's partial bin stays before its full ones.
        pairs.sort_by_key(|(k, _)| *k);
        let mut bins = Vec::with_capacity(pairs.len());
        for (k, n) in pairs {
            append_safe(&mut bins, k, u64::from(n));
        }
        let cnt = i64::try_from(count).unwrap_or(i64::MAX);
        let avg = if cnt > 0 { sum / count_f64(cnt) } else { 0.0 };
        Self {
            bins,
            buf: Vec::new(),
            summary: Summary {
                min,
                max,
                sum,
                avg,
                cnt,
            },
        }
    }

    /// The same sketch with `avg` as its average, for payloads that carry one.
    #[must_use]
    pub fn with_avg(mut self, avg: f64) -> Self {
        self.summary.avg = avg;
        self
    }

    /// The bins with the buffered keys folded in.
    fn flushed(&self) -> Cow<'_, [Bin]> {
        if self.buf.is_empty() {
            return Cow::Borrowed(&self.bins);
        }
        let mut bins = self.bins.clone();
        let mut keys = self.buf.clone();
        insert_keys(&mut bins, &mut keys, BIN_LIMIT);
        Cow::Owned(bins)
    }

    /// A weighted insert's bins, after the buffered keys (the agent's `CountBuf`, flushed at
    /// once), within [`MAX_COUNT`].
    fn insert_count(&mut self, key: i16, count: u64) {
        self.flush();
        let held: u64 = self.bins.iter().map(|b| u64::from(b.n)).sum();
        let count = count.min(MAX_COUNT.saturating_sub(held));
        if count > 0 {
            insert_counts(&mut self.bins, &mut [(key, count)], BIN_LIMIT);
        }
    }
}

/// The value a key stands for (the agent's `Config.f64`): γ^(key−bias), the middle of its bin
/// on a log scale, negated for negative keys; 0 for the key 0, ±∞ for ±32767 (and for keys past
/// it, which the agent cannot represent).
pub fn key_to_value(key: i32) -> f64 {
    if key < 0 {
        return -key_to_value(key.saturating_neg());
    }
    if key >= INF_KEY {
        return f64::INFINITY;
    }
    if key == 0 {
        return 0.0;
    }
    go_pow_int(GAMMA, key - BIAS)
}

/// The key of a value (the agent's `Config.key`). ±∞ have the keys ±32767, which the agent
/// intends for them (its own result for them depends on the platform, and its aggregator never
/// asks); NaN has none and gets 0.
pub fn value_to_key(value: f64) -> i32 {
    if value.is_nan() {
        return 0;
    }
    if value.is_infinite() {
        return if value > 0.0 { INF_KEY } else { -INF_KEY };
    }
    i32::from(key_of(value))
}

/// `Config.key` for finite values.
fn key_of(v: f64) -> i16 {
    if v < 0.0 {
        return -key_of(-v);
    }
    if v == 0.0 || v < NORM_MIN {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "ln v / ln γ is within ±46000 for finite v"
    )]
    let i = (go_log(v) / GAMMA_LN).round_ties_even() as i32 + BIAS;
    if i > MAX_KEY {
        return INF_KEY as i16;
    }
    // i < 1 cannot happen for v ≥ norm.min; the agent guards against it all the same.
    i16::try_from(i.max(1)).unwrap_or(1)
}

fn clamp_key(k: i32) -> i16 {
    i16::try_from(k.clamp(-INF_KEY, INF_KEY)).unwrap_or(0)
}

/// `appendSafe`: a count past 65535 becomes a partial bin (if any) then full bins.
fn append_safe(bins: &mut Vec<Bin>, k: i16, n: u64) {
    let width = u64::from(MAX_BIN_WIDTH);
    if n <= width {
        bins.push(Bin { k, n: narrow(n) });
        return;
    }
    let rest = n % width;
    if rest != 0 {
        bins.push(Bin { k, n: narrow(rest) });
    }
    for _ in 0..n / width {
        bins.push(Bin {
            k,
            n: MAX_BIN_WIDTH,
        });
    }
}

/// A count known to fit a bin.
fn narrow(n: u64) -> u16 {
    u16::try_from(n).unwrap_or(MAX_BIN_WIDTH)
}

/// `trimLeft`: past `limit` bins, the lowest ones collapse into the lowest bin kept. What that
/// bin cannot count stays in full bins under the keys of the bins removed (the agent's
/// `overflow` list), so no observation is lost and the result can exceed `limit`.
fn trim_left(bins: &mut Vec<Bin>, limit: usize) {
    if limit == 0 || bins.len() <= limit {
        return;
    }
    let remove = bins.len() - limit;
    let width = u64::from(MAX_BIN_WIDTH);
    let mut missing: u64 = 0;
    let mut overflow = Vec::new();
    for b in &bins[..remove] {
        missing += u64::from(b.n);
        if missing > width {
            overflow.push(Bin {
                k: b.k,
                n: MAX_BIN_WIDTH,
            });
            missing -= width;
        }
    }
    // `incrSafe` on the lowest bin kept.
    let kept = &mut bins[remove];
    let next = missing + u64::from(kept.n);
    let left = next.saturating_sub(width);
    kept.n = narrow(next.min(width));
    if left > 0 {
        append_safe(&mut overflow, kept.k, left);
    }
    bins.splice(..remove, overflow);
}

/// `sparseStore.insert`: a batch of keys, sorted, merged into the bins.
fn insert_keys(bins: &mut Vec<Bin>, keys: &mut [i16], limit: usize) {
    keys.sort_unstable();
    let mut out = Vec::with_capacity(bins.len() + keys.len());
    let (mut s, mut i) = (0, 0);
    while s < bins.len() && i < keys.len() {
        let b = bins[s];
        let k = keys[i];
        if b.k < k {
            out.push(b);
            s += 1;
        } else {
            let run = leading_equal(&keys[i..]);
            if b.k > k {
                append_safe(&mut out, k, run as u64);
            } else {
                append_safe(&mut out, k, u64::from(b.n) + run as u64);
                s += 1;
            }
            i += run;
        }
    }
    out.extend_from_slice(&bins[s..]);
    while i < keys.len() {
        let run = leading_equal(&keys[i..]);
        append_safe(&mut out, keys[i], run as u64);
        i += run;
    }
    trim_left(&mut out, limit);
    *bins = out;
}

/// How many keys at the start of `keys` equal the first.
fn leading_equal(keys: &[i16]) -> usize {
    keys.iter().take_while(|k| **k == keys[0]).count()
}

/// `sparseStore.insertCounts`: counted keys, sorted, merged into the bins; each joins the first
/// bin of its key.
fn insert_counts(bins: &mut Vec<Bin>, counts: &mut [(i16, u64)], limit: usize) {
    counts.sort_by_key(|(k, _)| *k);
    let mut out = Vec::with_capacity(bins.len() + counts.len());
    let (mut s, mut i) = (0, 0);
    while s < bins.len() && i < counts.len() {
        let b = bins[s];
        let (k, n) = counts[i];
        if b.k < k {
            out.push(b);
            s += 1;
        } else if b.k > k {
            append_safe(&mut out, k, n);
            i += 1;
        } else {
            append_safe(&mut out, k, u64::from(b.n).saturating_add(n));
            s += 1;
            i += 1;
        }
    }
    out.extend_from_slice(&bins[s..]);
    for &(k, n) in &counts[i..] {
        append_safe(&mut out, k, n);
    }
    trim_left(&mut out, limit);
    *bins = out;
}

/// `sparseStore.merge`: the i-th bin of a key in `other` joins the i-th bin of that key here.
fn merge_bins(bins: &mut Vec<Bin>, other: &[Bin], limit: usize) {
    let mut out = Vec::with_capacity(bins.len() + other.len());
    let mut s = 0;
    for &o in other {
        while s < bins.len() && bins[s].k < o.k {
            out.push(bins[s]);
            s += 1;
        }
        if s < bins.len() && bins[s].k == o.k {
            append_safe(&mut out, o.k, u64::from(o.n) + u64::from(bins[s].n));
            s += 1;
        } else {
            out.push(o);
        }
    }
    out.extend_from_slice(&bins[s..]);
    trim_left(&mut out, limit);
    *bins = out;
}

// Go's math functions, ported so that keys and key values match the agent's bit for bit.
// Rust's `ln` and `powf` (the C library's) differ from them in the last bit for some inputs,
// which moves a value sitting on a bin boundary to the other bin.

// The constants of Go's `math/log.go` (FreeBSD's `e_log.c`), by their bits as Go documents them.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
const L1: f64 = f64::from_bits(0x3FE5_5555_5555_5593);
const L2: f64 = f64::from_bits(0x3FD9_9999_9997_FA04);
const L3: f64 = f64::from_bits(0x3FD2_4924_9422_9359);
const L4: f64 = f64::from_bits(0x3FCC_71C5_1D8E_78AF);
const L5: f64 = f64::from_bits(0x3FC7_4664_96CB_03DE);
const L6: f64 = f64::from_bits(0x3FC3_9A09_D078_C69F);
const L7: f64 = f64::from_bits(0x3FC2_F112_DF3E_5244);
/// √2/2, as `math/log_amd64.s` writes it (7.07106781186547524401e-01).
const HALF_SQRT2: f64 = f64::from_bits(0x3FE6_A09E_667F_3BCD);

/// Go's `math.Log` on amd64 (`archLog`), for positive normal `x`: the FreeBSD algorithm with the
/// assembly's reduction, which doubles the fraction when it is at most √2/2.
const fn go_log(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut f1 = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FE0_0000_0000_0000);
    let mut k = (((bits >> 52) & 0x7FF) as i64 - 0x3FE) as f64;
    if f1 <= HALF_SQRT2 {
        f1 *= 2.0;
        k -= 1.0;
    }
    let f = f1 - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// Go's `math.Log1p` for `(√2/2 − 1) < x < (√2 − 1)` and `|x| ≥ 2^-29`, where it needs no
/// argument reduction (the agent calls it once, with 2ε).
const fn go_log1p_small(f: f64) -> f64 {
    let hfsq = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let r = z * (L1 + z * (L2 + z * (L3 + z * (L4 + z * (L5 + z * (L6 + z * L7))))));
    f - (hfsq - s * (hfsq + r))
}

/// Go's `math.Frexp` for positive normal `x`: `x = frac · 2^exp` with `frac` in [½, 1).
const fn go_frexp(x: f64) -> (f64, i64) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7FF) as i64 - 1022;
    (f64::from_bits((bits & !(0x7FF << 52)) | (1022 << 52)), exp)
}

/// Go's `math.Ldexp` for a positive normal `frac` and a result that is neither subnormal, zero
/// nor infinite (γ^k for the keys of a sketch).
const fn go_ldexp(frac: f64, exp: i64) -> f64 {
    let bits = frac.to_bits();
    let e = exp + ((bits >> 52) & 0x7FF) as i64 - 1023;
    if e > 1023 {
        return f64::INFINITY;
    }
    if e < -1022 {
        return 0.0;
    }
    f64::from_bits((bits & !(0x7FF << 52)) | (((e + 1023) as u64) << 52))
}

/// Go's `math.Pow(x, y)` for `x > 1` and an integer `y`: repeated squaring of the fraction of
/// `x`, its powers of two kept apart, then inverted for a negative `y`.
const fn go_pow_int(x: f64, y: i32) -> f64 {
    if y == 0 {
        return 1.0;
    }
    let mut a1 = 1.0;
    let mut ae: i64 = 0;
    let (mut x1, mut xe) = go_frexp(x);
    let mut i = y.unsigned_abs() as i64;
    while i != 0 {
        if xe < -(1 << 12) || (1 << 12) < xe {
            ae += xe;
            break;
        }
        if i & 1 == 1 {
            a1 *= x1;
            ae += xe;
        }
        x1 *= x1;
        xe <<= 1;
        if x1 < 0.5 {
            x1 += x1;
            xe -= 1;
        }
        i >>= 1;
    }
    if y < 0 {
        a1 = 1.0 / a1;
        ae = -ae;
    }
    go_ldexp(a1, ae)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent's store test notation: `key:count` pairs, `max` for 65535.
    fn store(dsl: &str) -> Vec<Bin> {
        dsl.split_whitespace()
            .map(|token| {
                let (k, n) = token.split_once(':').expect("key:count");
                let n = match n {
                    "max" => MAX_BIN_WIDTH,
                    n if n.starts_with("max-") => {
                        MAX_BIN_WIDTH - n[4..].parse::<u16>().expect("count")
                    }
                    n => n.parse().expect("count"),
                };
                Bin {
                    k: k.parse().expect("key"),
                    n,
                }
            })
            .collect()
    }

    #[test]
    fn constants_are_the_agents() {
        assert_eq!(GAMMA, 1.015625);
        // Go's Log1p(2ε) is the correctly rounded ln γ.
        assert_eq!(GAMMA_LN.to_bits(), 0x3F8F_C0A8_B0FC_03E4);
        assert_eq!(GAMMA_LN, (2.0 * RELATIVE_ACCURACY).ln_1p());
        assert_eq!(BIAS, 1338);
        assert_eq!(HALF_SQRT2, std::f64::consts::FRAC_1_SQRT_2);
        assert!((NORM_MIN / GAMMA.powi(1 - BIAS) - 1.0).abs() < 1e-12);
        assert_eq!(key_of(NORM_MIN), 1);
        assert_eq!(MAX_COUNT, 268_431_360);
    }

    #[test]
    fn go_log_is_within_an_ulp_of_the_c_librarys() {
        for v in [
            1e-9,
            0.5,
            std::f64::consts::FRAC_1_SQRT_2,
            1.0,
            2.0,
            10.0,
            123.456,
            1e100,
            4e211,
        ] {
            let ours = go_log(v);
            let theirs = v.ln();
            assert!(
                (ours - theirs).abs() <= theirs.abs() * f64::EPSILON,
                "{v}: {ours} vs {theirs}"
            );
        }
    }

    #[test]
    fn go_pow_matches_powi_closely_and_is_exact_for_small_exponents() {
        assert_eq!(go_pow_int(GAMMA, 1), GAMMA);
        assert_eq!(go_pow_int(GAMMA, 2), GAMMA * GAMMA);
        assert_eq!(go_pow_int(GAMMA, -1), 1.0 / GAMMA);
        for e in [-1337, -500, -1, 3, 77, 1000, 31428] {
            let ours = go_pow_int(GAMMA, e);
            let theirs = GAMMA.powi(e);
            assert!(
                (ours / theirs - 1.0).abs() < 1e-12,
                "{e}: {ours} vs {theirs}"
            );
        }
    }

    #[test]
    fn inserts_follow_the_agents_store_test_vectors() {
        // pkg/quantile/store_test.go, TestStore/insert.
        let cases: [(&str, &str, &[i16]); 9] = [
            ("", "0:3 1:1 2:1 5:1 9:1", &[0, 0, 0, 1, 2, 5, 9]),
            ("0:2", "-3:1 -2:1 -1:1 0:2", &[-1, -2, -3]),
            ("0:2", "0:4", &[0, 0]),
            ("0:max", "0:1 0:max", &[0]),
            ("0:max 0:max", "0:1 0:max 0:max", &[0]),
            ("0:1 0:max 0:max", "0:3 0:max 0:max", &[0, 0]),
            (
                "1:1 3:1 4:1 5:1 6:1 7:1",
                "1:1 2:1 3:2 4:1 5:1 6:1 7:1",
                &[2, 3],
            ),
            ("1:1 3:1", "1:1 2:3 3:1", &[2, 2, 2]),
            ("0:max-3", "0:2 0:max", &[0, 0, 0, 0, 0]),
        ];
        for (start, want, keys) in cases {
            let mut bins = store(start);
            insert_keys(&mut bins, &mut keys.to_vec(), BIN_LIMIT);
            assert_eq!(bins, store(want), "{start} + {keys:?}");
        }
    }

    #[test]
    fn merges_follow_the_agents_store_test_vectors() {
        // pkg/quantile/store_test.go, TestStore/merge.
        let cases = [
            ("1:1", "", "1:1", 0),
            ("", "1:1", "1:1", 0),
            ("1:3", "1:2", "1:5", 0),
            ("1:max-1", "1:max-2", "1:max-3 1:max", 0),
            ("1:1 2:1 3:1", "5:1 6:1 10:1", "1:1 2:1 3:1 5:1 6:1 10:1", 0),
            (
                "0:1 1:1 2:1 3:1 4:1 5:1 6:1 7:1 8:1 9:1 10:1",
                "0:1 1:1 2:1 3:1 4:1 5:1 6:1 7:1 8:1 9:1",
                "8:18 9:2 10:1",
                3,
            ),
        ];
        for (s, o, want, limit) in cases {
            let mut bins = store(s);
            merge_bins(
                &mut bins,
                &store(o),
                if limit == 0 { BIN_LIMIT } else { limit },
            );
            assert_eq!(bins, store(want), "{s} + {o}");
        }
    }

    #[test]
    fn trim_left_keeps_the_agents_overflow_layout() {
        // pkg/quantile/store_test.go, TestStore/trimLeft: the removed mass that does not fit the
        // lowest bin kept stays under the removed bins' keys.
        let cases = [
            ("", "", 0),
            ("1:1", "1:1", 0),
            ("1:1", "1:1", 1),
            ("1:max 2:max 3:max", "2:max 2:max 3:max", 2),
            (
                "1:max 1:max 1:1 2:max 3:1 4:1",
                "1:65535 1:65535 2:1 2:65535 3:1 4:1",
                3,
            ),
            ("1:max-1 2:max-1 3:1", "1:max-1 2:max-1 3:1", 3),
        ];
        for (s, want, limit) in cases {
            let mut bins = store(s);
            trim_left(&mut bins, limit);
            assert_eq!(bins, store(want), "{s} at {limit}");
        }
    }

    #[test]
    fn the_buffer_fills_and_flushes_as_the_agents() {
        // pkg/quantile/agent_test.go, TestAgent: one sketch through every step.
        let mut a = AgentSketch::new();
        let binsum = |a: &AgentSketch| a.bins.iter().map(|b| u64::from(b.n)).sum::<u64>();
        let step = |a: &mut AgentSketch, ninsert: usize, rate: f64, flush: bool| {
            for i in 0..ninsert {
                a.insert_sampled(i as f64, rate);
            }
            if flush {
                a.flush();
            }
        };
        step(&mut a, AGENT_BUF_CAP - 1, 1.0, false);
        assert_eq!((binsum(&a), a.buf.len()), (0, AGENT_BUF_CAP - 1));
        step(&mut a, 1, 1.0, false);
        assert_eq!((binsum(&a), a.buf.len()), (512, 0));
        step(&mut a, 1, 1.0, false);
        assert_eq!((binsum(&a), a.buf.len()), (512, 1));
        step(&mut a, AGENT_BUF_CAP, 1.0, false);
        assert_eq!((binsum(&a), a.buf.len()), (1024, 1));
        step(&mut a, 0, 1.0, true);
        assert_eq!((binsum(&a), a.buf.len()), (1025, 0));
        assert_eq!(a.count(), 1025);
        a = AgentSketch::new();
        step(&mut a, 2, 0.1, true);
        assert_eq!((binsum(&a), a.buf.len(), a.count()), (20, 0, 20));
        step(&mut a, 2, 1.0, true);
        assert_eq!((binsum(&a), a.buf.len(), a.count()), (22, 0, 22));
    }
}
