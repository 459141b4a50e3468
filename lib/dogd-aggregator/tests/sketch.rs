//! The agent-compatible DDSketch: keys, bins, summary, quantiles and accuracy, checked against
//! the agent's formula, vectors produced by the agent's own Go code, and an independent DDSketch
//! implementation (Python's `ddsketch`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use dogd_aggregator::sketch::{
    AgentSketch, GAMMA, INF_KEY, MAX_COUNT, MAX_KEY, RELATIVE_ACCURACY, key_to_value, value_to_key,
};

/// ln γ for γ = 1 + 2/128, written out independently of the crate.
fn ln_gamma() -> f64 {
    (2.0_f64 / 128.0).ln_1p()
}

/// The agent's bias, written out by hand: `1 − ⌊ln(1e-9) / ln γ⌋`.
fn bias() -> i32 {
    1 - (1e-9_f64.ln() / ln_gamma()).floor() as i32
}

/// The agent's key formula, written out by hand for values away from bin boundaries.
fn formula_key(v: f64) -> i32 {
    if v < 0.0 {
        return -formula_key(-v);
    }
    let norm_min = GAMMA.powi(1 - bias());
    if v < norm_min {
        return 0;
    }
    let i = (v.ln() / ln_gamma()).round_ties_even() as i32 + bias();
    if i > 32766 { 32767 } else { i.max(1) }
}

/// A small deterministic generator (xorshift64), so that the data sets are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn sketch_of(values: &[f64]) -> AgentSketch {
    let mut s = AgentSketch::new();
    for v in values {
        s.insert(*v);
    }
    s
}

/// The value of the bin holding the observation of rank `rank` (0-based, ascending).
fn bin_value_at_rank(s: &AgentSketch, rank: u64) -> f64 {
    let (keys, counts) = s.bins();
    let mut seen = 0u64;
    for (k, n) in keys.iter().zip(&counts) {
        seen += u64::from(*n);
        if seen > rank {
            return key_to_value(*k);
        }
    }
    panic!("rank {rank} past the {seen} observations of the bins");
}

fn assert_close(what: &str, estimate: f64, exact: f64, tolerance: f64) {
    assert!(
        (estimate - exact).abs() <= tolerance * exact.abs(),
        "{what}: {estimate} is not within {tolerance} of {exact} (off by {})",
        ((estimate - exact) / exact).abs()
    );
}

/// Checks, for every percentile, the bin holding the agent's rank against ε and the agent's
/// interpolated quantile against γ^1.5 − 1: it interpolates from the middle of that bin towards
/// γ times it, half a bin past the bin's edge (the agent's own tests allow γ² − 1).
fn assert_accurate(name: &str, values: &[f64]) {
    let s = sketch_of(values);
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    for p in 1..=99 {
        let q = f64::from(p) / 100.0;
        let rank = (q * (n - 1.0)).round_ties_even() as u64;
        let exact = sorted[rank as usize];
        let tolerance = RELATIVE_ACCURACY * (1.0 + 1e-12);
        assert_close(
            &format!("{name} bin at q={q}"),
            bin_value_at_rank(&s, rank),
            exact,
            tolerance,
        );
        let quantile = s.quantile(q).expect("a quantile");
        assert_close(
            &format!("{name} quantile at q={q}"),
            quantile,
            exact,
            GAMMA.powf(1.5) - 1.0,
        );
    }
}

#[test]
fn keys_of_simple_values_follow_the_agents_formula() {
    assert_eq!(bias(), 1338);
    // round(ln v / ln γ) + 1338, by hand: ln 0.5 / ln γ = −44.707 → −45; ln 2 → 45.
    assert_eq!(value_to_key(1.0), 1338);
    assert_eq!(value_to_key(0.5), 1293);
    assert_eq!(value_to_key(2.0), 1383);
    assert_eq!(value_to_key(-2.0), -1383);
    // From the agent's agent_test.go (TestAgentInterpolation): key(10) = 1487.
    assert_eq!(value_to_key(10.0), 1487);
    assert_eq!(value_to_key(-10.0), -1487);
    // ln(1e-9) / ln γ = −1336.62 → −1337, the key 1.
    assert_eq!(value_to_key(1e-9), 1);
    assert_eq!(value_to_key(1e-10), 0);
    assert_eq!(value_to_key(-1e-10), 0);
    assert_eq!(value_to_key(0.0), 0);
    assert_eq!(value_to_key(-0.0), 0);
    // ln(1e300) / ln γ = 44554.6, far past the largest finite key: the +∞ key.
    assert_eq!(value_to_key(1e300), INF_KEY);
    assert_eq!(value_to_key(f64::MAX), INF_KEY);
    assert_eq!(value_to_key(-1e300), -INF_KEY);
    assert_eq!(value_to_key(f64::INFINITY), INF_KEY);
    assert_eq!(value_to_key(f64::NEG_INFINITY), -INF_KEY);
    assert_eq!(value_to_key(f64::NAN), 0);
    // The largest finite key, γ^(32766−1338) ≈ 4.14e211, holds values up to γ^31428.5 ≈ 4.17e211.
    assert_eq!(value_to_key(4.16e211), MAX_KEY);
    assert_eq!(value_to_key(4.18e211), INF_KEY);

    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for _ in 0..100_000 {
        let v = (rng.uniform() * 520.0 - 22.0).exp() * if rng.next() & 1 == 0 { 1.0 } else { -1.0 };
        let position = v.abs().ln() / ln_gamma();
        // A value within a hair of a bin boundary is left to the boundary tests below.
        if (position - position.floor() - 0.5).abs() < 1e-6 || (v.abs() - 1e-9).abs() < 1e-11 {
            continue;
        }
        assert_eq!(value_to_key(v), formula_key(v), "key of {v:e}");
    }
}

#[test]
fn the_smallest_indexable_value_is_the_power_of_gamma_just_below_1e_9() {
    let norm_min = GAMMA.powi(1 - bias());
    assert!((9.94e-10..9.95e-10).contains(&norm_min), "{norm_min:e}");
    assert_eq!(value_to_key(9.95e-10), 1);
    assert_eq!(value_to_key(9.93e-10), 0);
    assert_eq!(value_to_key(-9.95e-10), -1);
}

#[test]
fn values_just_around_a_bin_boundary_fall_on_either_side_of_it() {
    for m in [-1000, -45, -1, 0, 1, 44, 1000, 20000, 31000] {
        let boundary = GAMMA.powf(f64::from(m) + 0.5);
        assert_eq!(
            value_to_key(boundary * (1.0 - 1e-12)),
            m + bias(),
            "below γ^({m}+½)"
        );
        assert_eq!(
            value_to_key(boundary * (1.0 + 1e-12)),
            m + bias() + 1,
            "above γ^({m}+½)"
        );
    }
}

#[test]
fn a_value_on_a_bin_boundary_gets_the_agents_key_not_the_c_librarys() {
    // ln(v)/ln γ is 60.50000000000001 with the C library's log and just below 60.5 with Go's
    // (the agent's, checked with its code): the agent says 1398.
    let v = f64::from_bits(0x4004_7062_493E_AC69);
    assert_eq!(v, 2.5548749658824375);
    assert_eq!(value_to_key(v), 1398);
}

#[test]
fn every_key_is_the_key_of_its_own_value() {
    for k in (-MAX_KEY..=MAX_KEY).filter(|k| *k != 0) {
        assert_eq!(value_to_key(key_to_value(k)), k, "key {k}");
    }
    assert_eq!(key_to_value(0), 0.0);
    assert_eq!(key_to_value(1338), 1.0);
    assert_eq!(key_to_value(1339), GAMMA);
    assert_eq!(key_to_value(1337), 1.0 / GAMMA);
    assert_eq!(key_to_value(INF_KEY), f64::INFINITY);
    assert_eq!(key_to_value(-INF_KEY), f64::NEG_INFINITY);
    assert!((key_to_value(-1383) / -(GAMMA.powi(45)) - 1.0).abs() < 1e-14);
}

#[test]
fn the_summary_is_kept_exactly_as_the_agent_keeps_it() {
    let values = [3.5, -1.25, 1e-3, 7.0, 0.0, 42.0, -8.5, 0.1, 0.2, 0.3];
    let s = sketch_of(&values);
    // The agent's summary.Summary: a running sum and a running average.
    let (mut sum, mut avg) = (0.0, 0.0);
    for (i, v) in values.iter().enumerate() {
        sum += v;
        avg += (v - avg) / (i + 1) as f64;
    }
    assert_eq!(s.count(), 10);
    assert_eq!(s.min(), -8.5);
    assert_eq!(s.max(), 42.0);
    assert_eq!(s.sum().to_bits(), sum.to_bits());
    assert_eq!(s.avg().to_bits(), avg.to_bits());
    assert_eq!(s.bins().1.iter().map(|n| u64::from(*n)).sum::<u64>(), 10);
}

#[test]
fn merging_two_sketches_equals_inserting_everything_into_one() {
    let mut rng = Rng(7);
    let values: Vec<f64> = (0..5000)
        .map(|_| (rng.normal() * 2.0).exp() * 10.0 - 5.0)
        .collect();
    let (left, right) = values.split_at(1700);
    let mut merged = sketch_of(left);
    merged.merge(&sketch_of(right));
    let all = sketch_of(&values);
    assert_eq!(merged.bins(), all.bins());
    assert_eq!(merged.count(), all.count());
    assert_eq!(merged.min(), all.min());
    assert_eq!(merged.max(), all.max());
    assert_close("sum", merged.sum(), all.sum(), 1e-12);
    assert_close("avg", merged.avg(), all.avg(), 1e-12);
}

#[test]
fn insert_n_equals_n_inserts() {
    let mut weighted = AgentSketch::new();
    let mut repeated = AgentSketch::new();
    for (i, v) in [2.5, -0.75, 1e6, 2.5, 0.0].into_iter().enumerate() {
        let n = [3, 1, 1000, 70_000, 2][i];
        weighted.insert_n(v, n);
        for _ in 0..n {
            repeated.insert(v);
        }
    }
    assert_eq!(weighted.bins(), repeated.bins());
    assert_eq!(weighted.count(), repeated.count());
    assert_eq!(weighted.min(), repeated.min());
    assert_eq!(weighted.max(), repeated.max());
    assert_close("sum", weighted.sum(), repeated.sum(), 1e-12);
    assert_close("avg", weighted.avg(), repeated.avg(), 1e-9);
    let mut nothing = AgentSketch::new();
    nothing.insert_n(1.0, 0);
    assert!(nothing.is_empty());
}

#[test]
fn a_key_past_65535_observations_spills_into_full_bins_after_a_partial_one() {
    let k = value_to_key(3.0);
    let mut one_by_one = AgentSketch::new();
    for _ in 0..70_000 {
        one_by_one.insert(3.0);
    }
    assert_eq!(one_by_one.bins(), (vec![k, k], vec![4465, 65535]));
    assert_eq!(one_by_one.count(), 70_000);
    let mut at_once = AgentSketch::new();
    at_once.insert_n(3.0, 70_000);
    assert_eq!(at_once.bins(), one_by_one.bins());

    let mut full = AgentSketch::new();
    full.insert_n(3.0, 65_535);
    assert_eq!(full.bins(), (vec![k], vec![65535]));
    full.insert_n(3.0, 65_535);
    assert_eq!(full.bins(), (vec![k, k], vec![65535, 65535]));
    full.insert(3.0);
    assert_eq!(full.bins(), (vec![k, k, k], vec![1, 65535, 65535]));
    // The quantiles read through the spilled bins, interpolating within each as the agent does.
    assert_close(
        "median",
        full.quantile(0.5).expect("median"),
        3.0,
        GAMMA.powf(1.5) - 1.0,
    );
}

#[test]
fn past_4096_bins_the_lowest_collapse_and_high_quantiles_stay_accurate() {
    // 12000 values, each 1 % above the previous: about 7700 keys.
    let mut values = Vec::new();
    let mut v = 1e-6;
    for _ in 0..12_000 {
        values.push(v);
        v *= 1.01;
    }
    let s = sketch_of(&values);
    let (keys, counts) = s.bins();
    assert_eq!(keys.len(), 4096);
    assert_eq!(counts.iter().map(|n| u64::from(*n)).sum::<u64>(), 12_000);
    assert_eq!(s.count(), 12_000);
    // The lowest bin kept holds every value up to it; the others only their own.
    assert!(counts[0] > 5000, "{}", counts[0]);
    assert_eq!(*keys.last().expect("bins"), value_to_key(values[11_999]));
    for p in 60..=99 {
        let q = f64::from(p) / 100.0;
        let rank = (q * 11_999.0).round_ties_even() as u64;
        let exact = values[rank as usize];
        assert_close(
            &format!("bin at q={q}"),
            bin_value_at_rank(&s, rank),
            exact,
            RELATIVE_ACCURACY * (1.0 + 1e-12),
        );
        assert_close(
            &format!("quantile at q={q}"),
            s.quantile(q).expect("quantile"),
            exact,
            GAMMA.powf(1.5) - 1.0,
        );
    }
}

#[test]
fn relative_accuracy_holds_for_uniform_exponential_and_lognormal_data() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let uniform: Vec<f64> = (0..20_000).map(|_| 1.0 + rng.uniform() * 999.0).collect();
    let exponential: Vec<f64> = (0..20_000)
        .map(|_| -(1.0 - rng.uniform()).ln() * 25.0)
        .collect();
    let lognormal: Vec<f64> = (0..20_000)
        .map(|_| (1.0 + 2.0 * rng.normal()).exp())
        .collect();
    let negative_lognormal: Vec<f64> = lognormal.iter().map(|v| -v).collect();
    assert_accurate("uniform", &uniform);
    assert_accurate("exponential", &exponential);
    assert_accurate("lognormal", &lognormal);
    assert_accurate("negative lognormal", &negative_lognormal);
}

#[test]
fn quantiles_follow_the_agents_sparse_test_vectors() {
    // pkg/quantile/sparse_test.go, TestQuantile: 0..=100 inserted in order.
    let s = sketch_of(&(0..=100).map(f64::from).collect::<Vec<_>>());
    assert_eq!(s.quantile(0.0), Some(0.0));
    assert_eq!(s.quantile(0.01), Some(key_to_value(value_to_key(1.0))));
    assert_eq!(s.quantile(0.98), Some(key_to_value(value_to_key(98.0))));
    assert_eq!(s.quantile(1.0), Some(100.0));
    // TestMerge: −50..=50 gives symmetric quantiles around 0.
    let s = sketch_of(&(-50..=50).map(f64::from).collect::<Vec<_>>());
    assert_eq!(s.bins().0.len(), 101);
    assert_eq!(s.quantile(0.5), Some(0.0));
    assert_eq!(s.quantile(0.99), s.quantile(0.01).map(|v| -v));
    for p in 0..50 {
        let q = f64::from(p) / 100.0;
        let (high, low) = (
            s.quantile(0.5 + q).expect("q"),
            s.quantile(0.5 - q).expect("q"),
        );
        assert!((high + low).abs() <= 1e-6, "q=±{q}: {high} vs {low}");
    }
}

/// FNV-1a over each bin's key and count as little-endian 32-bit words, as the Go side hashed them.
fn fnv(keys: &[i32], counts: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, n) in keys.iter().zip(counts) {
        for word in [*k as u32, *n] {
            for byte in word.to_le_bytes() {
                h ^= u64::from(byte);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    h
}

#[test]
fn sketches_match_the_go_agent_bit_for_bit() {
    struct Expected {
        bins: usize,
        fnv: u64,
        count: u64,
        min: u64,
        max: u64,
        sum: u64,
        avg: u64,
        quantiles: [u64; 5],
    }
    fn check(name: &str, s: &AgentSketch, e: &Expected) {
        let (keys, counts) = s.bins();
        assert_eq!(keys.len(), e.bins, "{name}: bins");
        assert_eq!(fnv(&keys, &counts), e.fnv, "{name}: bin hash");
        assert_eq!(s.count(), e.count, "{name}: count");
        assert_eq!(s.min().to_bits(), e.min, "{name}: min");
        assert_eq!(s.max().to_bits(), e.max, "{name}: max");
        assert_eq!(s.sum().to_bits(), e.sum, "{name}: sum");
        assert_eq!(s.avg().to_bits(), e.avg, "{name}: avg");
        for (q, want) in [0.01, 0.25, 0.5, 0.75, 0.99].into_iter().zip(e.quantiles) {
            assert_eq!(
                s.quantile(q).expect("quantile").to_bits(),
                want,
                "{name}: quantile {q}"
            );
        }
    }
    // Expected values printed by the agent's pkg/quantile (the uint16 store, as in
    // opentelemetry-mapping-go 88c0a00, identical to the agent's) through quantile.Agent.Insert
    // and Finish, on amd64.

    // Every sample rate branch, the agent's rate clamping and its summary of weighted samples.
    let rates = [1.0, 0.5, 0.3, 0.1, 0.01, 0.0, -1.0, 2.0, 0.25];
    let mut mixed = AgentSketch::new();
    for i in 0..2000 {
        mixed.insert_sampled(
            f64::from(i % 97) * 1.37 - 20.0,
            rates[i as usize % rates.len()],
        );
    }
    check(
        "mixed rates",
        &mixed,
        &Expected {
            bins: 95,
            fnv: 0xba21_1426_ea4e_e962,
            count: 27309,
            min: 0xc034_0000_0000_0000,
            max: 0x405b_e147_ae14_7ae2,
            sum: 0x4132_efb1_428f_5c29,
            avg: 0x4046_a91c_d735_8852,
            quantiles: [
                0xc032_c2c7_3671_f8a4,
                0x4029_de16_38ce_3344,
                0x4046_a59d_1a1d_b0f7,
                0x4053_dec3_d3a7_df4a,
                0x405b_f213_620b_7aea,
            ],
        },
    );

    // Heavy weighted samples spilling bins while the bin limit collapses them: the agent's
    // buffering order and overflow layout both show in the bins.
    let mut collapse = AgentSketch::new();
    let mut v = 1e-9;
    for i in 0..6000 {
        collapse.insert_sampled(v, if i % 3 == 0 { 1.0 / 40000.0 } else { 1.0 });
        v *= 1.03;
    }
    check(
        "collapse",
        &collapse,
        &Expected {
            bins: 4483,
            fnv: 0xf925_73ef_a100_c449,
            count: 80_004_000,
            min: 0x3e11_2e0b_e826_d695,
            max: 0x4e0e_668c_d8f6_2724,
            sum: 0x4f39_c3c5_f6cb_8476,
            avg: 0x4d95_9ca8_b64b_e95e,
            quantiles: [
                0x41fe_7c8a_7d28_dc9f,
                0x42e2_f6e6_59e1_385c,
                0x4610_6dae_ed81_89c4,
                0x4a0f_3d81_16a9_1d4f,
                0x4de4_9b17_e41a_2795,
            ],
        },
    );

    // Negative values, values below the smallest indexable one, and the key 1.
    let mut small = AgentSketch::new();
    for i in 0..1000 {
        small.insert(-f64::from(i % 7) - 0.5);
        small.insert(f64::from(i % 11) * 1e-10);
    }
    assert_eq!(
        small.bins(),
        (
            vec![-1459, -1448, -1435, -1419, -1397, -1364, -1293, 0, 1],
            vec![142, 143, 143, 143, 143, 143, 143, 910, 90]
        )
    );
    check(
        "small",
        &small,
        &Expected {
            bins: 9,
            fnv: 0xd4bf_acc9_4554_d6d6,
            count: 2000,
            min: 0xc01a_0000_0000_0000,
            max: 0x3e11_2e0b_e826_d695,
            sum: 0xc0ab_51ff_ffef_3d4b,
            avg: 0xbffb_f9db_22bf_bbbc,
            quantiles: [
                0xc01a_12a8_cc8b_afca,
                0xc00c_4ea6_2984_afbe,
                0,
                0,
                0x3e11_48da_2db4_2878,
            ],
        },
    );
}

#[test]
fn sample_rates_weigh_samples_as_the_agent_does() {
    let mut s = AgentSketch::new();
    s.insert_sampled(4.0, 0.1);
    assert_eq!(s.count(), 10);
    assert_eq!(s.sum(), 40.0);
    assert_eq!(s.bins(), (vec![value_to_key(4.0)], vec![10]));

    // 1/0.3 = 3.33…: the count and the bins take 3, the sum 3.33… × v.
    let mut s = AgentSketch::new();
    s.insert_sampled(3.0, 0.3);
    assert_eq!(s.count(), 3);
    assert_eq!(s.sum(), (1.0 / 0.3) * 3.0);
    assert_eq!(s.avg(), 3.0);
    assert_eq!(s.bins().1, vec![3]);

    // Rates outside (0, 1) count once.
    for rate in [1.0, 0.0, -1.0, 2.0, f64::NAN, f64::INFINITY] {
        let mut s = AgentSketch::new();
        s.insert_sampled(5.0, rate);
        assert_eq!(
            (s.count(), s.sum(), s.bins().1),
            (1, 5.0, vec![1]),
            "rate {rate}"
        );
    }
}

#[test]
fn a_weighted_insert_never_takes_the_bins_past_the_agents_max_count() {
    let mut s = AgentSketch::new();
    s.insert_sampled(2.0, 1e-12);
    // The summary counts every observation; the bins stop at MAX_COUNT, 4096 full bins.
    assert_eq!(s.count(), 1_000_000_000_000);
    let (keys, counts) = s.bins();
    assert_eq!(keys.len(), 4096);
    assert_eq!(counts.iter().map(|n| u64::from(*n)).sum::<u64>(), MAX_COUNT);
    s.insert_sampled(3.0, 1e-6);
    assert_eq!(s.bins().0.len(), 4096);
    assert_close(
        "median",
        s.quantile(0.5).expect("median"),
        2.0,
        GAMMA.powf(1.5) - 1.0,
    );
}

#[test]
fn non_finite_values_are_ignored() {
    let mut s = AgentSketch::new();
    s.insert(f64::NAN);
    s.insert(f64::INFINITY);
    s.insert_n(f64::NEG_INFINITY, 3);
    s.insert_sampled(f64::NAN, 0.5);
    assert!(s.is_empty());
    s.insert(1.0);
    s.insert(f64::INFINITY);
    assert_eq!((s.count(), s.max()), (1, 1.0));
}

#[test]
fn an_empty_sketch_has_no_bins_and_no_quantile() {
    let s = AgentSketch::new();
    assert!(s.is_empty());
    assert_eq!(s.count(), 0);
    assert_eq!(s.bins(), (vec![], vec![]));
    assert_eq!(s.quantile(0.5), None);
    assert_eq!((s.min(), s.max(), s.sum(), s.avg()), (0.0, 0.0, 0.0, 0.0));
    assert_eq!(s, AgentSketch::default());
}

#[test]
fn reading_a_sketch_does_not_depend_on_whether_it_was_flushed() {
    let values: Vec<f64> = (0..1300).map(|i| f64::from(i) * 0.731).collect();
    let buffered = sketch_of(&values);
    let mut flushed = buffered.clone();
    flushed.flush();
    assert_eq!(buffered, flushed);
    assert_eq!(buffered.bins(), flushed.bins());
    assert_eq!(buffered.quantile(0.9), flushed.quantile(0.9));
    let mut merged = AgentSketch::new();
    merged.merge(&buffered);
    assert_eq!(merged, flushed);
}

#[test]
fn a_sketch_rebuilt_from_its_parts_is_the_same_sketch() {
    let mut rng = Rng(99);
    let mut s = sketch_of(&(0..3000).map(|_| rng.normal() * 50.0).collect::<Vec<_>>());
    s.insert_n(1.5, 100_000);
    let (keys, counts) = s.bins();
    let rebuilt = AgentSketch::from_parts(&keys, &counts, s.count(), s.min(), s.max(), s.sum())
        .with_avg(s.avg());
    assert_eq!(rebuilt, s);
    assert_eq!(rebuilt.quantile(0.3), s.quantile(0.3));

    // Payloads from elsewhere: unsorted keys are sorted, counts past 65535 split as the agent
    // splits them, empty bins dropped, keys clamped to the key range.
    let odd = AgentSketch::from_parts(
        &[5, -3, 5, 70_000],
        &[1, 2, 0, 100_000],
        100_003,
        -1.0,
        1.0,
        0.0,
    );
    assert_eq!(
        odd.bins(),
        (vec![-3, 5, INF_KEY, INF_KEY], vec![2, 1, 34465, 65535])
    );
    assert_eq!(odd.avg(), 0.0);
}

#[test]
fn a_sketch_is_small() {
    // One sketch per context and 10-second bucket: the struct itself stays within 96 bytes.
    assert!(
        std::mem::size_of::<AgentSketch>() <= 96,
        "{}",
        std::mem::size_of::<AgentSketch>()
    );
}

/// Rebuilds a `ddsketch` sketch (DataDog's Python implementation) from bins and returns its
/// mapping's γ and relative accuracy, its count and its quantiles.
///
/// Index mapping: an agent key k > 0 covers the values v with round(log_γ v) = k − bias, that is
/// (γ^(k−bias−½), γ^(k−bias+½)], and stands for their middle γ^(k−bias). Python's
/// `LogarithmicMapping` gives the index i to (γ^(i−offset−1), γ^(i−offset)] and the value
/// γ^(i−offset)·2/(1+γ), the point of that interval with the smallest relative error, at most
/// (γ−1)/(γ+1). With `offset = bias − ½`, index i = k covers exactly the agent's bin k, so the
/// keys go into the positive store unchanged, negative keys −k into the negative store as k
/// (ddsketch stores negative values by the index of their magnitude, as the agent mirrors them),
/// and the key 0 into the zero count. (The agent's own conversion to sketches-go uses
/// `offset = bias + ½` because sketches-go floors where Python's ddsketch takes the ceiling.)
const DDSKETCH_SCRIPT: &str = r#"
import json, sys
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

data = json.load(sys.stdin)
mapping = LogarithmicMapping.from_gamma_offset(data["gamma"], data["bias"] - 0.5)
positive, negative, zeros = DenseStore(), DenseStore(), 0.0
for key, count in zip(data["keys"], data["counts"]):
    if key > 0:
        positive.add(key, count)
    elif key < 0:
        negative.add(-key, count)
    else:
        zeros += count
sketch = BaseDDSketch(mapping, positive, negative, zeros)
json.dump({
    "gamma": mapping.gamma,
    "relative_accuracy": mapping.relative_accuracy,
    "count": sketch.count,
    "quantiles": [sketch.get_quantile_value(q) for q in data["qs"]],
}, sys.stdout)
"#;

#[test]
fn python_ddsketch_decodes_our_bins_within_its_relative_accuracy() {
    let python = dogd_testkit::python_with(Path::new(env!("CARGO_TARGET_TMPDIR")), &["ddsketch"]);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut values: Vec<f64> = (0..4000)
        .map(|_| (1.0 + 2.5 * rng.normal()).exp())
        .collect();
    values.extend((0..1500).map(|_| -(rng.normal() * 1.5).exp() * 30.0));
    values.extend(std::iter::repeat_n(0.0, 300));
    values.extend((0..200).map(|_| 1e-3 + rng.uniform() * 1e6));
    let s = sketch_of(&values);
    let (keys, counts) = s.bins();
    let qs: Vec<f64> = (0..=100).map(|p| f64::from(p) / 100.0).collect();
    // The agent's parameters, written out by hand, not taken from the sketch.
    let input = serde_json::json!({"gamma": 1.0 + 2.0 / 128.0, "bias": bias(), "keys": keys, "counts": counts, "qs": qs});

    let mut child = Command::new(&python)
        .args(["-c", DDSKETCH_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write bins");
    let output = child.wait_with_output().expect("python output");
    assert!(output.status.success(), "python failed");
    let decoded: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("json from python");

    let gamma = decoded["gamma"].as_f64().expect("gamma");
    assert!((gamma - GAMMA).abs() < 1e-12, "ddsketch γ {gamma}");
    let alpha = decoded["relative_accuracy"]
        .as_f64()
        .expect("relative accuracy");
    assert!(
        (alpha - (GAMMA - 1.0) / (GAMMA + 1.0)).abs() < 1e-15 && alpha < RELATIVE_ACCURACY,
        "α {alpha}"
    );
    assert_eq!(decoded["count"].as_f64(), Some(values.len() as f64));

    // ddsketch answers with the bin holding rank ⌊q·(n−1)⌋.
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let quantiles = decoded["quantiles"].as_array().expect("quantiles");
    for (q, estimate) in qs.iter().zip(quantiles) {
        let estimate = estimate.as_f64().expect("a quantile");
        let exact = sorted[(q * (sorted.len() - 1) as f64).floor() as usize];
        assert_close(
            &format!("ddsketch at q={q}"),
            estimate,
            exact,
            alpha * (1.0 + 1e-9),
        );
    }
}
