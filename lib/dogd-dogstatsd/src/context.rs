//! Contexts: a metric's identity (name + sorted, de-duplicated tags + host), interned so that a
//! context seen before costs a hash lookup and no allocation.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A context's 64-bit key. Equal contexts have equal keys whatever the tag order or duplicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextKey(pub u64);

/// A metric's identity.
#[derive(Debug, PartialEq, Eq)]
pub struct Context {
    /// The metric name.
    pub name: Arc<str>,
    /// Tags, sorted and without duplicates.
    pub tags: Box<[Arc<str>]>,
    /// The host (empty: no host).
    pub host: Arc<str>,
}

/// A hasher for maps keyed by [`ContextKey`]: the keys are already well-mixed hashes, so they
/// are used as they are (SipHash over them again showed in the aggregator's per-sample cost).
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityHasher(u64);

/// A `HashMap` keyed by context key, without rehashing the key.
pub type ContextKeyMap<V> = HashMap<ContextKey, V, BuildHasherDefault<IdentityHasher>>;

/// A `HashSet` of context keys, without rehashing them.
pub type ContextKeySet = HashSet<ContextKey, BuildHasherDefault<IdentityHasher>>;

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Fixed seeds, so every worker (and every run) computes the same key for the same context.
fn hasher() -> impl Hasher {
    foldhash::fast::FixedState::with_seed(0x6c62_272e_07bb_0142).build_hasher()
}

fn hash_str(text: &str) -> u64 {
    let mut hasher = hasher();
    hasher.write(text.as_bytes());
    hasher.finish()
}

/// Tags of one sample; more than this many spill to the heap when computing a key.
const INLINE_TAGS: usize = 32;

/// The key of (name, tags, host), independent of tag order and duplicates.
pub fn context_key(name: &str, tags: &[&str], host: &str) -> ContextKey {
    let mut inline = [0u64; INLINE_TAGS];
    let mut spilled;
    let hashes: &mut [u64] = if tags.len() <= INLINE_TAGS {
        &mut inline[..tags.len()]
    } else {
        spilled = vec![0u64; tags.len()];
        &mut spilled
    };
    for (slot, tag) in hashes.iter_mut().zip(tags) {
        *slot = hash_str(tag);
    }
    hashes.sort_unstable();
    let mut hasher = hasher();
    hasher.write(name.as_bytes());
    hasher.write_u8(0xff);
    hasher.write(host.as_bytes());
    hasher.write_u8(0xff);
    let mut previous = None;
    for hash in hashes.iter() {
        if previous != Some(*hash) {
            hasher.write_u64(*hash);
            previous = Some(*hash);
        }
    }
    ContextKey(hasher.finish())
}

struct Entry {
    context: Arc<Context>,
    /// Coarse clock (resolver ticks) of the last sample.
    last_seen: u32,
}

/// Interns contexts and the strings they are made of. One per parser worker.
pub struct ContextResolver {
    contexts: HashMap<u64, Entry, BuildHasherDefault<IdentityHasher>>,
    strings: HashSet<Arc<str>, foldhash::fast::RandomState>,
    tick: u32,
}

impl std::fmt::Debug for ContextResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextResolver")
            .field("contexts", &self.contexts.len())
            .field("strings", &self.strings.len())
            .finish()
    }
}

impl Default for ContextResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextResolver {
    /// An empty resolver.
    pub fn new() -> Self {
        Self {
            contexts: HashMap::default(),
            strings: HashSet::default(),
            tick: 0,
        }
    }

    fn intern(
        strings: &mut HashSet<Arc<str>, foldhash::fast::RandomState>,
        text: &str,
    ) -> Arc<str> {
        if let Some(existing) = strings.get(text) {
            return existing.clone();
        }
        let interned: Arc<str> = Arc::from(text);
        strings.insert(interned.clone());
        interned
    }

    /// The context of (name, tags, host): the interned one if seen before, else a new one.
    pub fn resolve(&mut self, name: &str, tags: &[&str], host: &str) -> (ContextKey, Arc<Context>) {
        let key = context_key(name, tags, host);
        if let Some(entry) = self.contexts.get_mut(&key.0) {
            entry.last_seen = self.tick;
            return (key, entry.context.clone());
        }
        let mut sorted: Vec<&str> = tags.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let context = Arc::new(Context {
            name: Self::intern(&mut self.strings, name),
            tags: sorted
                .iter()
                .map(|tag| Self::intern(&mut self.strings, tag))
                .collect(),
            host: Self::intern(&mut self.strings, host),
        });
        self.contexts.insert(
            key.0,
            Entry {
                context: context.clone(),
                last_seen: self.tick,
            },
        );
        (key, context)
    }

    /// Number of live contexts.
    pub fn len(&self) -> usize {
        self.contexts.len()
    }

    /// Whether no context is live.
    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }

    /// Number of interned strings.
    pub fn interned_strings(&self) -> usize {
        self.strings.len()
    }

    /// Advances the resolver's coarse clock (called periodically, e.g. every second).
    pub fn tick(&mut self) {
        self.tick = self.tick.wrapping_add(1);
    }

    /// Forgets contexts not seen for `idle_ticks` ticks, then strings no context uses any more.
    /// Returns how many contexts were dropped. Memory stays bounded by the live contexts.
    pub fn expire(&mut self, idle_ticks: u32) -> usize {
        let now = self.tick;
        let before = self.contexts.len();
        self.contexts
            .retain(|_, entry| now.wrapping_sub(entry.last_seen) <= idle_ticks);
        let dropped = before - self.contexts.len();
        if dropped > 0 {
            // Only the interner holds such a string now.
            self.strings.retain(|text| Arc::strong_count(text) > 1);
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ignores_tag_order_and_duplicates() {
        let a = context_key("m", &["b:2", "a:1"], "h");
        assert_eq!(a, context_key("m", &["a:1", "b:2"], "h"));
        assert_eq!(a, context_key("m", &["a:1", "b:2", "a:1"], "h"));
        assert_ne!(a, context_key("m", &["a:1"], "h"));
        assert_ne!(a, context_key("m", &["a:1", "b:2"], "other"));
        assert_ne!(a, context_key("n", &["a:1", "b:2"], "h"));
        // Moving text between name and host must not collide.
        assert_ne!(context_key("ab", &[], ""), context_key("a", &[], "b"));
    }

    #[test]
    fn many_tags_spill_without_changing_the_key() {
        let tags: Vec<String> = (0..100).map(|i| format!("t:{i}")).collect();
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let mut reversed = refs.clone();
        reversed.reverse();
        assert_eq!(context_key("m", &refs, ""), context_key("m", &reversed, ""));
    }

    #[test]
    fn repeated_contexts_share_one_interned_context() {
        let mut resolver = ContextResolver::new();
        let (k1, c1) = resolver.resolve("requests", &["env:prod", "service:web"], "host-a");
        let (k2, c2) = resolver.resolve(
            "requests",
            &["service:web", "env:prod", "env:prod"],
            "host-a",
        );
        assert_eq!(k1, k2);
        assert!(Arc::ptr_eq(&c1, &c2));
        assert_eq!(
            &*c1.tags,
            &[Arc::from("env:prod"), Arc::from("service:web")]
        );
        let (_, other) = resolver.resolve("latency", &["env:prod"], "host-a");
        // Strings are shared between contexts too.
        assert!(Arc::ptr_eq(&other.tags[0], &c1.tags[0]));
        assert!(Arc::ptr_eq(&other.host, &c1.host));
        assert_eq!(resolver.len(), 2);
    }

    #[test]
    fn idle_contexts_and_their_strings_expire() {
        let mut resolver = ContextResolver::new();
        resolver.resolve("old", &["only:old"], "h");
        resolver.tick();
        resolver.tick();
        let (_, kept) = resolver.resolve("new", &["x:1"], "h");
        assert_eq!(resolver.expire(1), 1);
        assert_eq!(resolver.len(), 1);
        assert_eq!(resolver.interned_strings(), 3, "new, x:1, h");
        drop(kept);
    }
}
