//! Mapper profile tests, after the agent's `comp/dogstatsd/mapper/mapper_test.go`.

use std::sync::Arc;

use dogd_dogstatsd::mapper::{MappedName, Mapper, MapperError};
use serde_json::{Value, json};

fn mapper(profiles: Value) -> Mapper {
    match Mapper::from_profiles(&profiles, 1000) {
        Ok(mapper) => mapper,
        Err(error) => panic!("profiles refused: {error}"),
    }
}

fn mapped(name: &str, tags: &[&str]) -> Option<MappedName> {
    Some(MappedName {
        name: name.to_owned(),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
    })
}

fn map(mapper: &Mapper, name: &str) -> Option<MappedName> {
    mapper.map(name).map(|result| (*result).clone())
}

#[test]
fn wildcards_capture_dot_free_segments_into_tags() {
    let m = mapper(json!([{
        "name": "test",
        "prefix": "test.",
        "mappings": [
            {"match": "test.job.duration.*.*", "name": "test.job.duration",
             "tags": {"job_type": "$1", "job_name": "$2"}},
            {"match": "test.job.size.*.*", "name": "test.job.size",
             "tags": {"foo": "$1", "bar": "$2"}},
        ],
    }]));
    assert_eq!(
        map(&m, "test.job.duration.my_job_type.my_job_name"),
        mapped(
            "test.job.duration",
            &["job_name:my_job_name", "job_type:my_job_type"]
        )
    );
    assert_eq!(
        map(&m, "test.job.size.my_job_type.my_job_name"),
        mapped("test.job.size", &["bar:my_job_name", "foo:my_job_type"])
    );
    assert_eq!(map(&m, "test.job.size.not_match"), None);
    // A segment never spans a dot.
    assert_eq!(map(&m, "test.job.size.a.b.c"), None);
    // A segment may be empty.
    assert_eq!(
        map(&m, "test.job.size..x"),
        mapped("test.job.size", &["bar:x", "foo:"])
    );
}

#[test]
fn mappings_without_tags_or_with_partial_tags_are_accepted() {
    let m = mapper(json!([{
        "name": "test",
        "prefix": "test.",
        "mappings": [
            {"match": "test.job.duration.*.*", "name": "test.job.duration", "tags": {"job_type": "$1"}},
            {"match": "test.task.duration.*.*", "name": "test.task.duration"},
            {"match": "test.my-worker.start", "name": "test.worker.start", "tags": null},
        ],
    }]));
    assert_eq!(
        map(&m, "test.job.duration.my_job_type.my_job_name"),
        mapped("test.job.duration", &["job_type:my_job_type"])
    );
    assert_eq!(
        map(&m, "test.task.duration.a.b"),
        mapped("test.task.duration", &[])
    );
    assert_eq!(
        map(&m, "test.my-worker.start"),
        mapped("test.worker.start", &[])
    );
}

#[test]
fn names_and_tag_values_expand_groups_in_both_syntaxes() {
    let m = mapper(json!([{
        "name": "test",
        "prefix": "test.",
        "mappings": [
            {"match": "test.job.duration.*.*", "name": "test.hello.$2.${1}",
             "tags": {"job_type": "${1}_x", "job_name": "${2}_y"}},
            {"match": "test.*_start", "name": "test.start", "tags": {"job": "$1"}},
        ],
    }]));
    assert_eq!(
        map(&m, "test.job.duration.my_job_type.my_job_name"),
        mapped(
            "test.hello.my_job_name.my_job_type",
            &["job_name:my_job_name_y", "job_type:my_job_type_x"]
        )
    );
    // `[^.]*` is greedy but gives back what the literal after it needs.
    assert_eq!(
        map(&m, "test.my_job_start"),
        mapped("test.start", &["job:my_job"])
    );
}

#[test]
fn expansion_follows_go_regexp_expand_rules() {
    let m = mapper(json!([{
        "name": "expand",
        "prefix": "x.",
        "mappings": [{
            "match": "x.(?P<first>[a-z]+)\\.([0-9]+)",
            "match_type": "regex",
            "name": "$first.$2",
            "tags": {
                "dollar": "$$1",
                "trailing": "cost$",
                "unclosed": "${1",
                "longest_name": "$1x",
                "leading_zero": "$01",
                "missing": "<$9>",
                "named_braced": "${first}_",
                "whole": "$0",
                "not_a_name": "$-1",
            },
        }],
    }]));
    assert_eq!(
        map(&m, "x.abc.42"),
        mapped(
            "abc.42",
            &[
                "dollar:$1",
                "leading_zero:",
                "longest_name:",
                "missing:<>",
                "named_braced:abc_",
                "not_a_name:$-1",
                "trailing:cost$",
                "unclosed:${1",
                "whole:x.abc.42",
            ]
        )
    );
}

#[test]
fn all_allowed_wildcard_characters_are_literal() {
    let m = mapper(json!([{
        "name": "test",
        "prefix": "test.",
        "mappings": [{
            "match": "test.abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ-01234567.*",
            "name": "test.alphabet",
        }],
    }]));
    assert_eq!(
        map(
            &m,
            "test.abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ-01234567.123"
        ),
        mapped("test.alphabet", &[])
    );
    // The dot is literal, not "any character".
    assert_eq!(
        map(
            &m,
            "test.abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ-01234567x123"
        ),
        None
    );
}

#[test]
fn regex_mappings_are_anchored_and_capture() {
    let m = mapper(json!([{
        "name": "test",
        "prefix": "test.",
        "mappings": [
            {"match": "test\\.job\\.duration\\.(.*)", "match_type": "regex",
             "name": "test.job.duration", "tags": {"job_name": "$1"}},
            {"match": "test\\.job\\.([a-z][0-9]-\\w+)\\.(.*)", "match_type": "regex",
             "name": "test.job", "tags": {"job_type": "$1", "job_name": "$2"}},
            {"match": "test\\.task", "match_type": "regex", "name": "test.task"},
        ],
    }]));
    assert_eq!(
        map(&m, "test.job.duration.my.funky.job$name-abc/123"),
        mapped("test.job.duration", &["job_name:my.funky.job$name-abc/123"])
    );
    assert_eq!(
        map(&m, "test.job.a5-foo.bar"),
        mapped("test.job", &["job_name:bar", "job_type:a5-foo"])
    );
    assert_eq!(map(&m, "test.job.foo.bar-not-match"), None);
    assert_eq!(map(&m, "test.task"), mapped("test.task", &[]));
    assert_eq!(map(&m, "test.tasks"), None, "the end is anchored");
    assert_eq!(map(&m, "xtest.task"), None, "the start is anchored");
}

#[test]
fn only_the_first_profile_whose_prefix_matches_is_tried() {
    let m = mapper(json!([
        {"name": "foo", "prefix": "foo.", "mappings": [
            {"match": "foo.duration.*", "name": "foo.duration", "tags": {"name": "$1"}},
        ]},
        {"name": "bar", "prefix": "bar.", "mappings": [
            {"match": "bar.count.*", "name": "bar.count", "tags": {"name": "$1"}},
            {"match": "foo.duration2.*", "name": "foo.duration2", "tags": {"name": "$1"}},
        ]},
        {"name": "catch-all", "prefix": "*", "mappings": [
            {"match": "foo.duration2.*", "name": "never", "tags": {}},
            {"match": "z.*.mapped", "name": "z.mapped", "tags": {"by": "$1"}},
        ]},
    ]));
    assert_eq!(
        map(&m, "foo.duration.foo_name1"),
        mapped("foo.duration", &["name:foo_name1"])
    );
    // The `foo.` profile claims the name and has no mapping for it: later profiles,
    // including the catch-all, are not consulted.
    assert_eq!(map(&m, "foo.duration2.foo_name1"), None);
    assert_eq!(
        map(&m, "bar.count.bar_name1"),
        mapped("bar.count", &["name:bar_name1"])
    );
    assert_eq!(map(&m, "z.not.mapped"), mapped("z.mapped", &["by:not"]));
    assert_eq!(map(&m, "y.not.mapped"), None);
}

#[test]
fn first_matching_mapping_and_profile_win() {
    let m = mapper(json!([
        {"name": "a", "prefix": "foo.", "mappings": [
            {"match": "foo.*.duration.*", "name": "foo.bar1.duration", "tags": {"bar": "$1", "foo": "$2"}},
            {"match": "foo.bar.duration.*", "name": "never", "tags": {}},
        ]},
        {"name": "b", "prefix": "foo.bar.", "mappings": [
            {"match": "foo.bar.duration.*", "name": "foo.bar2.duration", "tags": {"foo_bar": "$1"}},
        ]},
    ]));
    assert_eq!(
        map(&m, "foo.bar.duration.foo_name"),
        mapped("foo.bar1.duration", &["bar:bar", "foo:foo_name"])
    );
    let star = mapper(json!([
        {"name": "one", "prefix": "*", "mappings": [
            {"match": "foo.duration.*", "name": "foo.duration", "tags": {"name1": "$1"}}]},
        {"name": "two", "prefix": "*", "mappings": [
            {"match": "foo.duration.*", "name": "foo.duration", "tags": {"name2": "$1"}}]},
    ]));
    assert_eq!(
        map(&star, "foo.duration.foo_name"),
        mapped("foo.duration", &["name1:foo_name"])
    );
}

fn refusal(profiles: Value) -> MapperError {
    match Mapper::from_profiles(&profiles, 1000) {
        Ok(_) => panic!("profiles accepted: {profiles}"),
        Err(error) => error,
    }
}

#[test]
fn invalid_profiles_are_refused_with_errors_naming_the_culprit() {
    let one = |mapping: Value| json!([{"name": "test", "prefix": "test.", "mappings": [{"match": "test.ok", "name": "ok"}, mapping]}]);
    let cases: Vec<(Value, &str)> = vec![
        (
            one(json!({"match": "test.job.*", "name": ""})),
            "profile: test, mapping num 1: name is required",
        ),
        (
            one(json!({"match": "test.job.*"})),
            "profile: test, mapping num 1: name is required",
        ),
        (
            one(json!({"name": "test.job"})),
            "profile: test, mapping num 1: match is required",
        ),
        (
            one(json!({"match": "test.[]duration.*.*", "name": "x"})),
            "it does not match allowed match regex",
        ),
        (
            one(json!({"match": "^test.invalid.duration.*.*", "name": "x"})),
            "profile: test, mapping num 1: invalid wildcard match pattern `^test.invalid.duration.*.*`",
        ),
        (
            one(json!({"match": "test.invalid.duration.**", "name": "x"})),
            "it should not contain consecutive `*`",
        ),
        (
            one(json!({"match": "test.invalid.duration", "match_type": "invalid", "name": "x"})),
            "profile: test, mapping num 1: invalid match type `invalid`",
        ),
        (
            // The match type is checked before the name, like the agent.
            one(json!({"match": "test.x", "match_type": "glob"})),
            "invalid match type",
        ),
        (
            one(json!({"match": "test\\.(", "match_type": "regex", "name": "x"})),
            "profile: test, mapping num 1: invalid match `test\\.(`, cannot compile regex",
        ),
        (
            one(json!({"match": "test.x", "name": "x", "tags": {"a": 1}})),
            "tags must be an object of strings",
        ),
        (
            one(json!({"match": "test.x", "name": "x", "tags": ["a"]})),
            "tags must be an object of strings",
        ),
        (
            one(json!("test.x")),
            "profile: test, mapping num 1: mapping must be an object",
        ),
        (
            one(json!({"match": 5, "name": "x"})),
            "profile: test, mapping num 1: match must be a string",
        ),
        (
            json!([{"prefix": "test.", "mappings": [{"match": "test.x", "match_type": "invalid", "name": "x"}]}]),
            "missing profile name 0",
        ),
        (
            json!([{"name": "ok", "prefix": "a."}, {"name": "", "prefix": "b."}]),
            "missing profile name 1",
        ),
        (
            json!([{"name": "test", "mappings": []}]),
            "missing prefix for profile: test",
        ),
        (
            json!([{"name": "test", "prefix": ""}]),
            "missing prefix for profile: test",
        ),
        (
            json!([{"name": "test", "prefix": "t.", "mappings": {}}]),
            "profile: test: mappings must be a list",
        ),
        (json!([42]), "profile #0: profile must be an object"),
        (
            json!({"name": "test"}),
            "must be a list of profiles, got an object",
        ),
        (json!("oops"), "must be a list of profiles, got a string"),
    ];
    for (profiles, expected) in cases {
        let message = refusal(profiles.clone()).to_string();
        assert!(
            message.contains(expected),
            "{profiles}\n  got:      {message}\n  expected: …{expected}…"
        );
    }
}

#[test]
fn unicode_classes_are_refused_at_load_time_not_at_match_time() {
    let error = refusal(json!([{"name": "u", "prefix": "u.", "mappings": [
        {"match": "u\\.\\pL+", "match_type": "regex", "name": "x"}]}]));
    assert!(
        matches!(error, MapperError::InvalidRegex { .. }),
        "{error:?}"
    );
}

#[test]
fn a_zero_cache_size_is_refused_like_the_agent_lru() {
    assert_eq!(
        Mapper::from_profiles(&json!([]), 0).err(),
        Some(MapperError::InvalidCacheSize)
    );
}

#[test]
fn no_profiles_map_nothing() {
    for profiles in [Value::Null, json!([])] {
        let m = mapper(profiles);
        assert_eq!(map(&m, "anything"), None);
        assert_eq!(m.cached_results(), 0);
    }
}

#[test]
fn the_cache_returns_the_same_answers_including_misses() {
    let m = mapper(json!([{"name": "t", "prefix": "t.", "mappings": [
        {"match": "t.*.x", "name": "t.x", "tags": {"k": "$1"}}]}]));
    let first = m.map("t.a.x");
    let second = m.map("t.a.x");
    assert_eq!(first, mapped("t.x", &["k:a"]).map(Arc::new));
    assert!(
        matches!((&first, &second), (Some(a), Some(b)) if Arc::ptr_eq(a, b)),
        "served from the cache"
    );
    assert_eq!(m.cached_results(), 1);

    // A miss inside a profile's prefix is cached too; a name outside every prefix is not.
    assert_eq!(m.map("t.nope"), None);
    assert_eq!(m.map("t.nope"), None);
    assert_eq!(m.cached_results(), 2);
    assert_eq!(m.map("other.name"), None);
    assert_eq!(m.cached_results(), 2);
}

#[test]
fn a_tiny_cache_stays_bounded_and_correct() {
    let profiles = json!([{"name": "t", "prefix": "t.", "mappings": [
        {"match": "t.*.x", "name": "t.x.$1", "tags": {"k": "$1"}}]}]);
    let Ok(m) = Mapper::from_profiles(&profiles, 2) else {
        panic!("profiles refused");
    };
    for round in 0..3 {
        for i in 0..50 {
            let name = format!("t.n{i}.x");
            let expected = MappedName {
                name: format!("t.x.n{i}"),
                tags: vec![format!("k:n{i}")],
            };
            assert_eq!(m.map(&name).as_deref(), Some(&expected), "round {round}");
            assert_eq!(m.map(&format!("t.miss{i}")), None);
            assert!(m.cached_results() <= 2, "{} entries", m.cached_results());
        }
    }
}

#[test]
fn a_large_cache_holds_at_most_its_size() {
    let profiles =
        json!([{"name": "t", "prefix": "*", "mappings": [{"match": "t.*", "name": "t"}]}]);
    let Ok(m) = Mapper::from_profiles(&profiles, 1000) else {
        panic!("profiles refused");
    };
    for i in 0..10_000 {
        m.map(&format!("t.{i}"));
    }
    assert!(m.cached_results() <= 1000, "{} entries", m.cached_results());
    assert!(m.cached_results() >= 400, "{} entries", m.cached_results());
}

#[test]
fn the_mapper_is_shared_between_threads() {
    let m = Arc::new(mapper(json!([{"name": "t", "prefix": "t.", "mappings": [
        {"match": "t.*.*", "name": "t.$2", "tags": {"a": "$1"}}]}])));
    let handles: Vec<_> = (0..4)
        .map(|thread| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..2000 {
                    let key = (i * 7 + thread) % 300;
                    let result = m.map(&format!("t.s{key}.v"));
                    assert_eq!(
                        result.as_deref(),
                        mapped("t.v", &[&format!("a:s{key}")]).as_ref()
                    );
                }
            })
        })
        .collect();
    for handle in handles {
        assert!(handle.join().is_ok());
    }
}
