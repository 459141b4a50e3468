//! The per-endpoint circuit breaker and its backoff policy, after the agent's
//! `blocked_endpoints.go` and `pkg/util/backoff`.
//!
//! An endpoint is `Unblocked` (send freely), `Blocked` until a deadline (send nothing), or
//! `HalfOpen` (one test transaction is out; send nothing until it answers). An error while unblocked
//! or half-open blocks the endpoint for `backoff(errors)`; errors while blocked are ignored (they
//! come from requests sent before the first error). A success while half-open forgives
//! `recovery_interval` errors and unblocks the endpoint once none are left.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use tokio::time::Instant;

/// The agent's `ExpBackoffPolicy`.
#[derive(Clone, Debug)]
pub(crate) struct BackoffPolicy {
    base: f64,
    factor: f64,
    max: f64,
    recovery_interval: u32,
    max_errors: u32,
}

impl BackoffPolicy {
    /// `factor` below 2 is raised to 2, as the agent does (it guarantees non-overlapping ranges).
    pub(crate) fn new(
        base: Duration,
        factor: f64,
        max: Duration,
        recovery_interval: u32,
        recovery_reset: bool,
    ) -> Self {
        let base = base.as_secs_f64().max(f64::MIN_POSITIVE);
        let max = max.as_secs_f64().max(base);
        let factor = if factor.is_finite() && factor >= 2.0 {
            factor
        } else {
            2.0
        };
        // Errors it takes to reach the maximum: floor(log2(max / base)) + 1.
        let max_errors = ((max / base).log2().floor().max(0.0) as u32).saturating_add(1);
        let recovery_interval = if recovery_reset {
            max_errors
        } else {
            recovery_interval.max(1)
        };
        Self {
            base,
            factor,
            max,
            recovery_interval,
            max_errors,
        }
    }

    /// How long to block after `errors` consecutive errors: `base * 2^errors` capped at `max`,
    /// otherwise a random duration in `[t / factor, t]`.
    pub(crate) fn duration(&self, errors: u32, rng: &mut Rng) -> Duration {
        if errors == 0 {
            return Duration::ZERO;
        }
        let exponent = i32::try_from(errors).unwrap_or(i32::MAX);
        let step = self.base * 2f64.powi(exponent);
        let seconds = if step > self.max {
            self.max
        } else {
            let low = step / self.factor;
            low + rng.next_f64() * (step - low)
        };
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs_f64(self.max))
    }

    fn inc(&self, errors: u32) -> u32 {
        errors.saturating_add(1).min(self.max_errors)
    }

    fn dec(&self, errors: u32) -> u32 {
        errors.saturating_sub(self.recovery_interval)
    }
}

/// A small, fast generator for backoff jitter (splitmix64). Seeded from the standard library's
/// per-process random hasher keys, so no extra dependency is needed.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Self {
        Self(RandomState::new().hash_one(0x5eed_u64))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Unblocked,
    Blocked { until: Instant },
    HalfOpen,
}

/// One endpoint's breaker.
#[derive(Clone, Debug)]
pub(crate) struct Breaker {
    errors: u32,
    state: State,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            errors: 0,
            state: State::Unblocked,
        }
    }
}

impl Breaker {
    /// Whether a transaction may be sent now (without changing state).
    pub(crate) fn can_send(&self, now: Instant) -> bool {
        match self.state {
            State::Unblocked => true,
            State::Blocked { until } => now >= until,
            State::HalfOpen => false,
        }
    }

    /// Records that a transaction is being sent: an expired block becomes half-open, so only this
    /// one test transaction goes out.
    pub(crate) fn on_send(&mut self, now: Instant) {
        if let State::Blocked { until } = self.state
            && now >= until
        {
            self.state = State::HalfOpen;
        }
    }

    /// When the endpoint may send again, if it is blocked.
    pub(crate) fn blocked_until(&self) -> Option<Instant> {
        match self.state {
            State::Blocked { until } => Some(until),
            _ => None,
        }
    }

    /// Whether the endpoint is blocked or waiting for its test transaction.
    pub(crate) fn is_blocked(&self) -> bool {
        self.state != State::Unblocked
    }

    /// Consecutive error steps.
    pub(crate) fn errors(&self) -> u32 {
        self.errors
    }

    /// A retryable failure came back.
    pub(crate) fn on_error(&mut self, now: Instant, policy: &BackoffPolicy, rng: &mut Rng) {
        match self.state {
            State::Unblocked | State::HalfOpen => {
                self.errors = policy.inc(self.errors);
                self.state = State::Blocked {
                    until: now + policy.duration(self.errors, rng),
                };
            }
            // Requests sent before the first error answer late; they say nothing new.
            State::Blocked { .. } => {}
        }
    }

    /// A transaction went through (or was answered with a final, non-retryable status).
    pub(crate) fn on_success(&mut self, now: Instant, policy: &BackoffPolicy, rng: &mut Rng) {
        match self.state {
            State::Unblocked => {}
            State::HalfOpen => {
                self.errors = policy.dec(self.errors);
                self.state = if self.errors == 0 {
                    State::Unblocked
                } else {
                    State::Blocked {
                        until: now + policy.duration(self.errors, rng),
                    }
                };
            }
            // It may have been sent before the error that blocked us: ignore it.
            State::Blocked { .. } => {}
        }
    }

    /// A request was abandoned without an answer (shutdown): a half-open test that never answered
    /// must not leave the endpoint waiting forever.
    pub(crate) fn on_abandoned(&mut self, now: Instant) {
        if self.state == State::HalfOpen {
            self.state = State::Blocked { until: now };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy::new(
            Duration::from_secs(2),
            2.0,
            Duration::from_secs(64),
            2,
            false,
        )
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps_at_the_maximum() {
        let policy = policy();
        let mut rng = Rng::new();
        // Six errors reach 64 s: floor(log2(64 / 2)) + 1.
        assert_eq!(policy.max_errors, 6);
        for _ in 0..100 {
            let first = policy.duration(1, &mut rng);
            assert!(
                (Duration::from_secs(2)..=Duration::from_secs(4)).contains(&first),
                "{first:?}"
            );
            let fourth = policy.duration(4, &mut rng);
            assert!(
                (Duration::from_secs(16)..=Duration::from_secs(32)).contains(&fourth),
                "{fourth:?}"
            );
            assert_eq!(policy.duration(6, &mut rng), Duration::from_secs(64));
        }
    }

    #[test]
    fn factor_below_two_is_raised_to_two() {
        let policy = BackoffPolicy::new(
            Duration::from_secs(2),
            1.0,
            Duration::from_secs(64),
            2,
            false,
        );
        assert!((policy.factor - 2.0).abs() < f64::EPSILON);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_blocks_until_the_backoff_then_one_test_transaction_goes_out() {
        let policy = policy();
        let mut rng = Rng::new();
        let mut breaker = Breaker::default();
        let start = Instant::now();
        assert!(breaker.can_send(start));

        breaker.on_error(start, &policy, &mut rng);
        assert!(!breaker.can_send(start));
        let until = breaker.blocked_until().expect("blocked");
        assert!(until - start >= Duration::from_secs(2));

        // Errors from requests already in flight are ignored while blocked.
        breaker.on_error(start, &policy, &mut rng);
        assert_eq!(breaker.errors(), 1);

        tokio::time::advance(Duration::from_secs(4)).await;
        let now = Instant::now();
        assert!(breaker.can_send(now));
        breaker.on_send(now);
        // Half-open: nothing else goes until the test answers.
        assert!(!breaker.can_send(now));

        // The test succeeds: one error minus a recovery interval of 2 leaves none.
        breaker.on_success(now, &policy, &mut rng);
        assert!(breaker.can_send(now));
        assert!(!breaker.is_blocked());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_test_transaction_blocks_for_longer() {
        let policy = policy();
        let mut rng = Rng::new();
        let mut breaker = Breaker::default();
        breaker.on_error(Instant::now(), &policy, &mut rng);
        tokio::time::advance(Duration::from_secs(4)).await;
        breaker.on_send(Instant::now());
        breaker.on_error(Instant::now(), &policy, &mut rng);
        assert_eq!(breaker.errors(), 2);
        let wait = breaker.blocked_until().expect("blocked") - Instant::now();
        assert!(wait >= Duration::from_secs(4), "{wait:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn success_with_errors_left_blocks_again_for_a_shorter_time() {
        let policy = policy();
        let mut rng = Rng::new();
        let mut breaker = Breaker::default();
        for _ in 0..4 {
            breaker.on_send(Instant::now());
            breaker.on_error(Instant::now(), &policy, &mut rng);
            tokio::time::advance(Duration::from_secs(64)).await;
        }
        assert_eq!(breaker.errors(), 4);
        breaker.on_send(Instant::now());
        breaker.on_success(Instant::now(), &policy, &mut rng);
        assert_eq!(breaker.errors(), 2);
        assert!(breaker.blocked_until().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_test_transaction_lets_the_next_one_go() {
        let policy = policy();
        let mut rng = Rng::new();
        let mut breaker = Breaker::default();
        breaker.on_error(Instant::now(), &policy, &mut rng);
        tokio::time::advance(Duration::from_secs(4)).await;
        breaker.on_send(Instant::now());
        breaker.on_abandoned(Instant::now());
        assert!(breaker.can_send(Instant::now()));
    }
}
