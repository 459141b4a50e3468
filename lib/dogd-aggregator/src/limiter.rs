//! The optional DogStatsD context limiter (the agent's `dogstatsd_context_limiter.*`): a global
//! budget of contexts split equally between senders, a sender being the value of one tag
//! (`pod_name` by default; contexts without it share one sender). A new context whose sender is at
//! its share, or that would exceed the global budget, is refused and its samples dropped and
//! counted, so one noisy sender cannot take the aggregator's memory from the others.

use std::collections::HashMap;
use std::sync::Arc;

/// The limiter's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextLimitConfig {
    /// Contexts allowed in total (`dogstatsd_context_limiter.limit`).
    pub limit: usize,
    /// The tag naming the sender (`dogstatsd_context_limiter.key_tag_name`, default `pod_name`).
    pub key_tag_name: String,
    /// Flushes a sender that holds no context is remembered for
    /// (`dogstatsd_context_limiter.entry_timeout`, default 1): while remembered it keeps its share.
    pub entry_timeout: u64,
}

#[derive(Debug, Default)]
struct Sender {
    contexts: usize,
    rejected: u64,
    /// The flush count when the sender was last seen.
    last_seen: u64,
}

/// Tracks contexts per sender against the budget.
#[derive(Debug)]
pub struct ContextLimiter {
    /// `key_tag_name:`, so `pod_name` does not match `pod_name_alias:x`.
    key_prefix: String,
    global: usize,
    /// `global / senders`, recomputed when a sender comes or goes.
    per_sender: usize,
    current: usize,
    senders: HashMap<Arc<str>, Sender>,
    flushes: u64,
    entry_timeout: u64,
}

impl ContextLimiter {
    /// A limiter, or `None` when `limit` is 0 (disabled).
    pub fn new(config: &ContextLimitConfig) -> Option<Self> {
        if config.limit == 0 {
            return None;
        }
        let mut key_prefix = config.key_tag_name.clone();
        if !key_prefix.ends_with(':') {
            key_prefix.push(':');
        }
        Some(Self {
            key_prefix,
            global: config.limit,
            per_sender: config.limit,
            current: 0,
            senders: HashMap::new(),
            flushes: 0,
            entry_timeout: config.entry_timeout,
        })
    }

    /// The sender of a context: its key tag (whole, `pod_name:web-1`), or the empty sender.
    pub fn sender_of(&self, tags: &[Arc<str>]) -> Arc<str> {
        tags.iter()
            .find(|tag| tag.starts_with(&self.key_prefix))
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    fn rebalance(&mut self) {
        self.per_sender = self.global / self.senders.len().max(1);
    }

    /// Called for a context not seen before: whether it may be created.
    pub fn track(&mut self, sender: &Arc<str>) -> bool {
        if !self.senders.contains_key(sender) {
            self.senders.insert(sender.clone(), Sender::default());
            self.rebalance();
        }
        let (per_sender, global, current, flushes) =
            (self.per_sender, self.global, self.current, self.flushes);
        let Some(entry) = self.senders.get_mut(sender) else {
            return false;
        };
        entry.last_seen = flushes;
        if entry.contexts >= per_sender || current >= global {
            entry.rejected += 1;
            return false;
        }
        entry.contexts += 1;
        self.current += 1;
        true
    }

    /// Called when a tracked context expires.
    pub fn remove(&mut self, sender: &Arc<str>) {
        let Some(entry) = self.senders.get_mut(sender) else {
            return;
        };
        entry.contexts = entry.contexts.saturating_sub(1);
        self.current = self.current.saturating_sub(1);
        if entry.contexts == 0 {
            self.senders.remove(sender);
            self.rebalance();
        }
    }

    /// Once per flush: forgets senders that hold no context and were not seen for
    /// `entry_timeout` flushes (they were refused by the global budget and never got one).
    pub fn end_flush(&mut self) {
        self.flushes += 1;
        let too_old = self.flushes.saturating_sub(self.entry_timeout);
        let before = self.senders.len();
        self.senders
            .retain(|_, sender| sender.contexts > 0 || sender.last_seen >= too_old);
        if self.senders.len() != before {
            self.rebalance();
        }
    }

    /// Senders tracked.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    /// Contexts a sender may hold now.
    pub fn per_sender_limit(&self) -> usize {
        self.per_sender
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: usize) -> ContextLimiter {
        ContextLimiter::new(&ContextLimitConfig {
            limit,
            key_tag_name: "pod_name".to_owned(),
            entry_timeout: 1,
        })
        .expect("enabled")
    }

    fn tags(list: &[&str]) -> Vec<Arc<str>> {
        list.iter().map(|tag| Arc::from(*tag)).collect()
    }

    #[test]
    fn a_zero_limit_disables_the_limiter() {
        assert!(
            ContextLimiter::new(&ContextLimitConfig {
                limit: 0,
                key_tag_name: "pod_name".to_owned(),
                entry_timeout: 1,
            })
            .is_none()
        );
    }

    #[test]
    fn the_sender_is_the_whole_key_tag_and_not_a_longer_tag_name() {
        let limiter = limiter(10);
        let sender = limiter.sender_of(&tags(&["env:prod", "pod_name:web-1"]));
        assert_eq!(&*sender, "pod_name:web-1");
        let sender = limiter.sender_of(&tags(&["pod_name_alias:x"]));
        assert_eq!(&*sender, "");
    }

    #[test]
    fn the_budget_is_split_equally_between_senders() {
        let mut limiter = limiter(4);
        let a: Arc<str> = Arc::from("pod_name:a");
        let b: Arc<str> = Arc::from("pod_name:b");
        assert!(limiter.track(&a));
        assert!(limiter.track(&a));
        assert!(limiter.track(&a), "alone, a may use the whole budget");
        // A second sender halves the share: a is over it and refused, b gets its share.
        assert!(limiter.track(&b));
        assert_eq!(limiter.per_sender_limit(), 2);
        assert!(!limiter.track(&a));
        assert!(!limiter.track(&b), "the global budget of 4 is used");
        // Two of a's contexts expire: it is back under its share and there is room again.
        limiter.remove(&a);
        limiter.remove(&a);
        assert!(limiter.track(&b));
        assert!(!limiter.track(&b), "b is at its share");
        assert!(limiter.track(&a), "a grows back to its share");
        assert!(!limiter.track(&a), "a is at its share");
    }

    #[test]
    fn a_sender_without_contexts_is_forgotten_after_the_entry_timeout() {
        let mut limiter = limiter(2);
        let a: Arc<str> = Arc::from("pod_name:a");
        let b: Arc<str> = Arc::from("pod_name:b");
        let c: Arc<str> = Arc::from("pod_name:c");
        assert!(limiter.track(&a));
        assert!(limiter.track(&b));
        assert!(!limiter.track(&c), "global budget reached");
        assert_eq!(limiter.senders(), 3);
        limiter.end_flush();
        limiter.end_flush();
        assert_eq!(
            limiter.senders(),
            2,
            "c held nothing and was not seen again"
        );
        assert_eq!(limiter.per_sender_limit(), 1);
    }
}
