//! Per-message tag and name handling done after parsing (agent:
//! `comp/dogstatsd/server/impl/enrich.go`, `pkg/util/strings/matcher.go`,
//! `comp/filterlist/impl/filterlist.go`).
//!
//! Order used by the agent for a metric, which callers should keep:
//! 1. mapper ([`crate::mapper::Mapper::map`]) on the raw name; mapped tags are appended to
//!    the message tags *before* step 2, so a mapped `host:` tag is special too;
//! 2. [`extract_special_tags`];
//! 3. [`NameRules::apply`]: namespace prefix, then the blocklist on the prefixed name;
//! 4. `dogstatsd_tags` are appended after all of this (not special, never stripped).

use std::borrow::Cow;

/// Tag prefix overriding the sample host (`host:` alone means "no host").
pub const HOST_TAG_PREFIX: &str = "host:";
/// Tag prefix carrying the client's pod UID for origin detection.
pub const ENTITY_ID_TAG_PREFIX: &str = "dd.internal.entity_id:";
/// Tag prefix carrying the requested origin tag cardinality.
pub const CARDINALITY_TAG_PREFIX: &str = "dd.internal.card:";
/// Tag prefix naming the JMX check that sent a metric (sets the metric source).
pub const JMX_CHECK_NAME_TAG_PREFIX: &str = "dd.internal.jmx_check_name:";

/// The agent's default `statsd_metric_namespace_blacklist` (`StandardStatsdPrefixes`,
/// agent `pkg/config/setup`): names starting with these are never namespaced.
pub const DEFAULT_NAMESPACE_BLACKLIST: &[&str] = &[
    "datadog.agent",
    "datadog.dogstatsd",
    "datadog.process",
    "datadog.trace_agent",
    "datadog.tracer",
    "activemq",
    "activemq_58",
    "airflow",
    "cassandra",
    "confluent",
    "hazelcast",
    "hive",
    "ignite",
    "jboss",
    "jvm",
    "kafka",
    "presto",
    "sidekiq",
    "solr",
    "tomcat",
    "runtime",
];

/// The special tags of a message, removed from its tag list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpecialTags<'a> {
    /// Value of the last `host:` tag. `Some("")` means "no host"; `None` means "use the
    /// default hostname". (An event or service check `h:` field, when non-empty, takes
    /// precedence over it.)
    pub host: Option<&'a str>,
    /// Value of the last `dd.internal.entity_id:` tag, raw: the agent later ignores the
    /// value `none`.
    pub entity_id: Option<&'a str>,
    /// The effective cardinality: the message's `card:` field when non-empty, otherwise the
    /// first non-empty `dd.internal.card:` tag (see [`extract_special_tags`]).
    pub cardinality: Option<&'a str>,
    /// Value of the last `dd.internal.jmx_check_name:` tag.
    pub jmx_check_name: Option<&'a str>,
}

/// Pushes every ordinary tag of `tags` into `out`, in order, and returns the special ones,
/// which are left out.
///
/// `cardinality_field` is the message's `card:` field (when honoured). As in the agent, a
/// `dd.internal.card:` tag is special only while no cardinality is known yet: once the
/// field or an earlier tag gave a non-empty value, later `dd.internal.card:` tags are kept
/// as ordinary tags. `host:`, `dd.internal.entity_id:` and `dd.internal.jmx_check_name:`
/// are always removed, the last one winning.
///
/// `tags` is any sequence of tags: a [`Tags`](crate::parse::Tags) by reference, or the
/// message tags chained with the mapper's tags.
pub fn extract_special_tags<'a, I>(
    tags: I,
    cardinality_field: Option<&'a str>,
    out: &mut Vec<&'a str>,
) -> SpecialTags<'a>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut special = SpecialTags::default();
    let mut cardinality = cardinality_field.unwrap_or("");
    for tag in tags {
        if let Some(host) = tag.strip_prefix(HOST_TAG_PREFIX) {
            special.host = Some(host);
        } else if let Some(entity_id) = tag.strip_prefix(ENTITY_ID_TAG_PREFIX) {
            special.entity_id = Some(entity_id);
        } else if let Some(card) = tag
            .strip_prefix(CARDINALITY_TAG_PREFIX)
            .filter(|_| cardinality.is_empty())
        {
            cardinality = card;
        } else if let Some(check) = tag.strip_prefix(JMX_CHECK_NAME_TAG_PREFIX) {
            special.jmx_check_name = Some(check);
        } else {
            out.push(tag);
        }
    }
    special.cardinality = Some(cardinality).filter(|card| !card.is_empty());
    special
}

/// Metric name rules: `statsd_metric_namespace`, `statsd_metric_namespace_blacklist` and
/// the metric blocklist.
#[derive(Debug, Clone, Default)]
pub struct NameRules {
    /// The namespace with its trailing `.`, empty when none.
    namespace: String,
    namespace_blacklist: Vec<String>,
    blocklist: Blocklist,
}

impl NameRules {
    /// Builds the rules from the agent settings.
    ///
    /// * `namespace`: `statsd_metric_namespace`; a `.` is appended when missing.
    /// * `namespace_blacklist`: `statsd_metric_namespace_blacklist` (default
    ///   [`DEFAULT_NAMESPACE_BLACKLIST`]); only consulted when a namespace is set.
    /// * `blocklist` / `blocklist_match_prefix`: the agent takes `metric_filterlist` (+
    ///   `metric_filterlist_match_prefix`) when that list is non-empty, and
    ///   `statsd_metric_blocklist` (+ `statsd_metric_blocklist_match_prefix`) otherwise.
    pub fn from_settings<S: AsRef<str>, T: AsRef<str>>(
        namespace: &str,
        namespace_blacklist: &[S],
        blocklist: &[T],
        blocklist_match_prefix: bool,
    ) -> Self {
        let mut namespace = namespace.to_owned();
        if !namespace.is_empty() && !namespace.ends_with('.') {
            namespace.push('.');
        }
        Self {
            namespace,
            namespace_blacklist: namespace_blacklist
                .iter()
                .map(|prefix| prefix.as_ref().to_owned())
                .collect(),
            blocklist: Blocklist::new(blocklist, blocklist_match_prefix),
        }
    }

    /// Same as [`from_settings`](Self::from_settings) with optional settings: no namespace
    /// when `None`, and [`DEFAULT_NAMESPACE_BLACKLIST`] when the blacklist is `None`.
    pub fn new(
        namespace: Option<&str>,
        namespace_blacklist: Option<&[String]>,
        blocklist: &[String],
        blocklist_match_prefix: bool,
    ) -> Self {
        match namespace_blacklist {
            Some(blacklist) => Self::from_settings(
                namespace.unwrap_or(""),
                blacklist,
                blocklist,
                blocklist_match_prefix,
            ),
            None => Self::from_settings(
                namespace.unwrap_or(""),
                DEFAULT_NAMESPACE_BLACKLIST,
                blocklist,
                blocklist_match_prefix,
            ),
        }
    }

    /// Returns the final name (namespaced unless blacklisted), or `None` when the metric
    /// is blocked. The blocklist is tested on the namespaced name, like the agent.
    pub fn apply<'a>(&self, name: &'a str) -> Option<Cow<'a, str>> {
        let name = if self.namespace.is_empty()
            || self
                .namespace_blacklist
                .iter()
                .any(|prefix| name.starts_with(prefix.as_str()))
        {
            Cow::Borrowed(name)
        } else {
            let mut prefixed = String::with_capacity(self.namespace.len() + name.len());
            prefixed.push_str(&self.namespace);
            prefixed.push_str(name);
            Cow::Owned(prefixed)
        };
        if self.blocklist.matches(&name) {
            return None;
        }
        Some(name)
    }

    /// `true` when `name` (already namespaced) is blocked.
    pub fn is_blocked(&self, name: &str) -> bool {
        self.blocklist.matches(name)
    }
}

/// Exact or prefix string matcher (the agent's `strings.Matcher`): a sorted list, reduced
/// to its shortest prefixes in prefix mode, searched by bisection.
#[derive(Debug, Clone, Default)]
struct Blocklist {
    sorted: Vec<String>,
    match_prefix: bool,
}

impl Blocklist {
    fn new<T: AsRef<str>>(names: &[T], match_prefix: bool) -> Self {
        let mut sorted: Vec<String> = names.iter().map(|n| n.as_ref().to_owned()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        if match_prefix {
            // Sorted order puts every string right after its prefixes: keeping only those
            // not covered by the last kept one leaves no entry that is another's prefix.
            let mut kept: Vec<String> = Vec::with_capacity(sorted.len());
            for name in sorted {
                if kept
                    .last()
                    .is_some_and(|last| name.starts_with(last.as_str()))
                {
                    continue;
                }
                kept.push(name);
            }
            sorted = kept;
        }
        Self {
            sorted,
            match_prefix,
        }
    }

    fn matches(&self, name: &str) -> bool {
        if self.sorted.is_empty() {
            return false;
        }
        let i = self.sorted.partition_point(|entry| entry.as_str() < name);
        if self.match_prefix && i > 0 && name.starts_with(self.sorted[i - 1].as_str()) {
            return true;
        }
        self.sorted.get(i).is_some_and(|entry| entry == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Tags;

    fn extract<'a>(raw: &'a str, card: Option<&'a str>) -> (SpecialTags<'a>, Vec<&'a str>) {
        let mut out = Vec::new();
        let special = extract_special_tags(Tags::new(raw), card, &mut out);
        (special, out)
    }

    #[test]
    fn ordinary_tags_are_kept_in_order_and_special_ones_removed() {
        let (special, out) = extract(
            "env:prod,host:web-1,dd.internal.entity_id:pod-uid,b,dd.internal.jmx_check_name:kafka,a",
            None,
        );
        assert_eq!(out, ["env:prod", "b", "a"]);
        assert_eq!(special.host, Some("web-1"));
        assert_eq!(special.entity_id, Some("pod-uid"));
        assert_eq!(special.jmx_check_name, Some("kafka"));
        assert_eq!(special.cardinality, None);
    }

    #[test]
    fn the_last_host_entity_and_jmx_tags_win() {
        let (special, out) = extract(
            "host:a,host:b,dd.internal.entity_id:x,dd.internal.entity_id:none,dd.internal.jmx_check_name:a,dd.internal.jmx_check_name:b",
            None,
        );
        assert!(out.is_empty());
        assert_eq!(special.host, Some("b"));
        assert_eq!(special.entity_id, Some("none"));
        assert_eq!(special.jmx_check_name, Some("b"));
    }

    #[test]
    fn an_empty_host_tag_means_no_host() {
        let (special, out) = extract("host:,x", None);
        assert_eq!(special.host, Some(""));
        assert_eq!(out, ["x"]);
        let (special, _) = extract("hostname:x,jmx_check_name:y", None);
        assert_eq!(special.host, None);
        assert_eq!(special.jmx_check_name, None);
    }

    #[test]
    fn a_cardinality_tag_is_special_only_until_a_cardinality_is_known() {
        let (special, out) = extract("dd.internal.card:high,dd.internal.card:low", None);
        assert_eq!(special.cardinality, Some("high"));
        assert_eq!(out, ["dd.internal.card:low"]);

        let (special, out) = extract("dd.internal.card:high", Some("orchestrator"));
        assert_eq!(special.cardinality, Some("orchestrator"));
        assert_eq!(out, ["dd.internal.card:high"]);

        // An empty `card:` field or tag does not count as known.
        let (special, out) = extract("dd.internal.card:,dd.internal.card:low", Some(""));
        assert_eq!(special.cardinality, Some("low"));
        assert!(out.is_empty());
    }

    #[test]
    fn mapper_tags_chained_after_message_tags_are_special_too() {
        let message_tags = Tags::new("a,host:from-message");
        let mapped = [String::from("b"), String::from("host:from-mapper")];
        let mut out = Vec::new();
        let special = extract_special_tags(
            message_tags.iter().chain(mapped.iter().map(String::as_str)),
            None,
            &mut out,
        );
        assert_eq!(out, ["a", "b"]);
        assert_eq!(special.host, Some("from-mapper"));
    }

    #[test]
    fn the_namespace_gets_its_dot_and_spares_blacklisted_names() {
        let rules =
            NameRules::from_settings("app", DEFAULT_NAMESPACE_BLACKLIST, &[] as &[&str], false);
        assert_eq!(rules.apply("requests").as_deref(), Some("app.requests"));
        assert_eq!(
            rules.apply("datadog.agent.running").as_deref(),
            Some("datadog.agent.running")
        );
        assert_eq!(rules.apply("jvm.heap").as_deref(), Some("jvm.heap"));
        // Plain prefix test, as in the agent: `jvmx` starts with `jvm`.
        assert_eq!(rules.apply("jvmx").as_deref(), Some("jvmx"));

        let dotted = NameRules::from_settings("app.", &[] as &[&str], &[] as &[&str], false);
        assert_eq!(dotted.apply("jvm.heap").as_deref(), Some("app.jvm.heap"));
        assert!(matches!(
            NameRules::default().apply("x"),
            Some(Cow::Borrowed("x"))
        ));
    }

    #[test]
    fn the_blacklist_only_matters_with_a_namespace() {
        let rules = NameRules::from_settings("", &["blocked"], &[] as &[&str], false);
        assert!(matches!(
            rules.apply("blocked.x"),
            Some(Cow::Borrowed("blocked.x"))
        ));
    }

    #[test]
    fn the_blocklist_matches_exact_names_or_prefixes_after_namespacing() {
        let exact = NameRules::from_settings("", &[] as &[&str], &["a.b", "c"], false);
        assert_eq!(exact.apply("a.b"), None);
        assert_eq!(exact.apply("c"), None);
        assert_eq!(exact.apply("a.b.c").as_deref(), Some("a.b.c"));
        assert_eq!(exact.apply("a").as_deref(), Some("a"));

        let prefix =
            NameRules::from_settings("", &[] as &[&str], &["a.b", "a.b.c", "zz", "c"], true);
        for blocked in ["a.b", "a.bx", "a.b.c.d", "c", "cat", "zz"] {
            assert_eq!(prefix.apply(blocked), None, "{blocked}");
            assert!(prefix.is_blocked(blocked));
        }
        for kept in ["a", "a.c", "b", "z", ""] {
            assert_eq!(prefix.apply(kept).as_deref(), Some(kept), "{kept}");
        }

        let namespaced = NameRules::from_settings("ns", &[] as &[&str], &["ns.x"], false);
        assert_eq!(namespaced.apply("x"), None);
        assert_eq!(namespaced.apply("ns.x").as_deref(), Some("ns.ns.x"));
    }

    #[test]
    fn optional_settings_default_to_the_agent_blacklist() {
        let rules = NameRules::new(Some("app"), None, &[], false);
        assert_eq!(rules.apply("runtime.go").as_deref(), Some("runtime.go"));
        assert_eq!(rules.apply("x").as_deref(), Some("app.x"));
        let custom = NameRules::new(
            Some("app"),
            Some(&[String::from("x")]),
            &[String::from("app.y")],
            false,
        );
        assert_eq!(custom.apply("x").as_deref(), Some("x"));
        assert_eq!(
            custom.apply("runtime.go").as_deref(),
            Some("app.runtime.go")
        );
        assert_eq!(custom.apply("y"), None);
        assert_eq!(
            NameRules::new(None, None, &[], false).apply("y").as_deref(),
            Some("y")
        );
    }
}
