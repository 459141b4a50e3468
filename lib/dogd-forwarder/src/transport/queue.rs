//! The in-memory queue: one deque per endpoint, each ordered by creation time, with a byte total.
//!
//! Per-endpoint deques let the dispatcher skip a blocked endpoint in O(1) and still send the newest
//! transaction of the others first (as the agent sorts its retries: fresh data matters most after
//! an outage); eviction compares the four fronts to find the oldest overall.

use std::collections::VecDeque;
use std::time::SystemTime;

use super::{Endpoint, Transaction};

/// A queued transaction and how many times it was sent without a final answer.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) tx: Transaction,
    pub(crate) attempts: u32,
}

impl Queued {
    pub(crate) fn new(tx: Transaction) -> Self {
        Self { tx, attempts: 0 }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    per_endpoint: [VecDeque<Queued>; 4],
    bytes: usize,
    len: usize,
}

impl Queue {
    /// Inserts in creation order (normally at the back: new payloads are the newest).
    pub(crate) fn push(&mut self, item: Queued) {
        let deque = &mut self.per_endpoint[item.tx.endpoint.index()];
        let created = item.tx.created_at;
        let mut position = deque.len();
        while position > 0 && deque[position - 1].tx.created_at > created {
            position -= 1;
        }
        self.bytes += item.tx.size();
        self.len += 1;
        deque.insert(position, item);
    }

    /// Creation time of the oldest transaction for `endpoint`.
    pub(crate) fn front_created(&self, endpoint: Endpoint) -> Option<SystemTime> {
        self.per_endpoint[endpoint.index()]
            .front()
            .map(|item| item.tx.created_at)
    }

    /// Creation time of the newest transaction for `endpoint`.
    pub(crate) fn back_created(&self, endpoint: Endpoint) -> Option<SystemTime> {
        self.per_endpoint[endpoint.index()]
            .back()
            .map(|item| item.tx.created_at)
    }

    /// Takes the newest transaction for `endpoint`.
    pub(crate) fn pop_back(&mut self, endpoint: Endpoint) -> Option<Queued> {
        let item = self.per_endpoint[endpoint.index()].pop_back()?;
        self.bytes -= item.tx.size();
        self.len -= 1;
        Some(item)
    }

    /// Takes the oldest transaction for `endpoint`.
    pub(crate) fn pop_front(&mut self, endpoint: Endpoint) -> Option<Queued> {
        let item = self.per_endpoint[endpoint.index()].pop_front()?;
        self.bytes -= item.tx.size();
        self.len -= 1;
        Some(item)
    }

    /// Takes the oldest transaction of any endpoint.
    pub(crate) fn pop_oldest(&mut self) -> Option<Queued> {
        let oldest = Endpoint::ALL
            .into_iter()
            .filter_map(|endpoint| self.front_created(endpoint).map(|t| (endpoint, t)))
            .min_by_key(|(_, created)| *created)?
            .0;
        self.pop_front(oldest)
    }

    /// Takes the oldest transactions until the queue holds at most `limit` bytes.
    pub(crate) fn evict_down_to(&mut self, limit: usize) -> Vec<Queued> {
        let mut evicted = Vec::new();
        while self.bytes > limit {
            match self.pop_oldest() {
                Some(item) => evicted.push(item),
                None => break,
            }
        }
        evicted
    }

    /// Takes everything, oldest first.
    pub(crate) fn drain_all(&mut self) -> Vec<Queued> {
        let mut all = Vec::with_capacity(self.len);
        while let Some(item) = self.pop_oldest() {
            all.push(item);
        }
        all
    }

    pub(crate) fn has(&self, endpoint: Endpoint) -> bool {
        !self.per_endpoint[endpoint.index()].is_empty()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::transport::CONTENT_TYPE_JSON;

    fn tx(endpoint: Endpoint, size: usize, age_secs: u64) -> Queued {
        let mut tx = Transaction::new(
            endpoint,
            Bytes::from(vec![b'x'; size]),
            CONTENT_TYPE_JSON,
            None,
        );
        tx.created_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - age_secs);
        Queued::new(tx)
    }

    #[test]
    fn transactions_are_kept_in_creation_order_per_endpoint() {
        let mut queue = Queue::default();
        queue.push(tx(Endpoint::Series, 1, 10));
        queue.push(tx(Endpoint::Series, 2, 30));
        queue.push(tx(Endpoint::Series, 3, 20));
        let sizes: Vec<usize> = std::iter::from_fn(|| queue.pop_front(Endpoint::Series))
            .map(|item| item.tx.size())
            .collect();
        assert_eq!(sizes, [2, 3, 1]);
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn eviction_takes_the_oldest_across_endpoints() {
        let mut queue = Queue::default();
        queue.push(tx(Endpoint::Series, 10, 5));
        queue.push(tx(Endpoint::Events, 10, 50));
        queue.push(tx(Endpoint::Sketches, 10, 20));
        let evicted = queue.evict_down_to(15);
        let endpoints: Vec<Endpoint> = evicted.iter().map(|item| item.tx.endpoint).collect();
        assert_eq!(endpoints, [Endpoint::Events, Endpoint::Sketches]);
        assert_eq!(queue.bytes(), 10);
        assert_eq!(queue.len(), 1);
        assert!(queue.has(Endpoint::Series));
    }
}
