//! Recognising `ENC[handle]` values and finding them in a configuration tree.

use std::collections::BTreeMap;

/// The handle of an `ENC[handle]` value, or `None` when `text` is not one.
///
/// As in the agent (`comp/core/secrets/utils/utils.go`, `IsEnc`), spaces and tabs around the value
/// are ignored (newlines are not), and the whole remaining text must start with `ENC[` and end with
/// `]`; everything between is the handle, verbatim (it may itself contain `[`, `]`, quotes or
/// JSON). So `ENC[a]b` and `db-ENC[x]` are plain strings, and `ENC[]` is a secret with the empty
/// handle, which [`crate::SecretBackend::fetch`] rejects with a clear error rather than letting
/// the literal text `ENC[]` be used as a setting's value.
pub fn parse_handle(text: &str) -> Option<&str> {
    text.trim_matches([' ', '\t'])
        .strip_prefix("ENC[")?
        .strip_suffix(']')
}

/// Every `ENC[handle]` string in `tree`, mapped to the key paths where it is used.
///
/// Path convention: the keys from the root, joined with `.`, with list elements as their decimal
/// index; for example `additional_endpoints.https://app.datadoghq.com.0` for the first key of an
/// endpoint, `instances.0.password` for a check's password. Keys are used verbatim (a key that
/// itself contains `.` is not escaped), so the paths are meant for messages and for matching a
/// setting name, not for parsing back. A `tree` that is itself an `ENC[]` string has the path `""`.
///
/// Only string values are examined (map keys, numbers and booleans never are), as in the agent's
/// walker. Paths are listed in the order the tree is walked: serde_json's map order, then list
/// order.
pub fn find_handles(tree: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    let mut path = Vec::new();
    walk(tree, &mut path, &mut found);
    found
}

fn walk<'a>(
    node: &'a serde_json::Value,
    path: &mut Vec<std::borrow::Cow<'a, str>>,
    found: &mut BTreeMap<String, Vec<String>>,
) {
    match node {
        serde_json::Value::String(text) => {
            if let Some(handle) = parse_handle(text) {
                found
                    .entry(handle.to_owned())
                    .or_default()
                    .push(path.join("."));
            }
        }
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(index.to_string().into());
                walk(item, path, found);
                path.pop();
            }
        }
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                path.push(key.as_str().into());
                walk(value, path, found);
                path.pop();
            }
        }
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_whole_enc_value_yields_its_handle() {
        assert_eq!(parse_handle("ENC[api_key]"), Some("api_key"));
        assert_eq!(
            parse_handle("ENC[{\"env\": \"prod\"}]"),
            Some("{\"env\": \"prod\"}")
        );
        assert_eq!(parse_handle("ENC[é;ü/x]"), Some("é;ü/x"));
    }

    #[test]
    fn spaces_and_tabs_around_the_value_are_ignored_but_not_newlines() {
        assert_eq!(parse_handle(" ENC[x] "), Some("x"));
        assert_eq!(parse_handle("\t ENC[x]\t"), Some("x"));
        assert_eq!(parse_handle("\nENC[x]"), None);
        assert_eq!(parse_handle("ENC[x]\n"), None);
    }

    #[test]
    fn the_empty_handle_is_still_recognised_as_a_secret() {
        assert_eq!(parse_handle("ENC[]"), Some(""));
    }

    #[test]
    fn text_around_or_inside_the_brackets_is_handled_like_the_agent() {
        assert_eq!(parse_handle("ENC[a]b"), None);
        assert_eq!(parse_handle("db-ENC[x]"), None);
        assert_eq!(parse_handle("ENC[x"), None);
        assert_eq!(parse_handle("ENC["), None);
        assert_eq!(parse_handle("enc[x]"), None);
        assert_eq!(parse_handle("ENC(x)"), None);
        assert_eq!(parse_handle(""), None);
        // The handle runs to the last `]`, as in the agent.
        assert_eq!(parse_handle("ENC[]]]]"), Some("]]]"));
        assert_eq!(parse_handle("ENC[a] ENC[b]"), Some("a] ENC[b"));
    }

    #[test]
    fn handles_are_found_in_nested_maps_and_lists_with_their_paths() {
        let tree = json!({
            "api_key": "ENC[dd_api]",
            "additional_endpoints": {
                "https://app.datadoghq.eu": ["ENC[eu_key]", "plain", " ENC[dd_api] "]
            },
            "instances": [
                {"host": "db", "password": "ENC[db_pass]", "port": 5432, "tags": ["ENC[tag]"]},
                {"password": "ENC[]", "user": "db-ENC[not_a_secret]"}
            ],
            "ENC[key_is_not_a_value]": true,
            "nothing": null
        });
        let mut found = find_handles(&tree);
        // The order of paths follows serde_json's map order, which a feature can change.
        found.values_mut().for_each(|paths| paths.sort());
        let expected: BTreeMap<String, Vec<String>> = [
            ("", vec!["instances.1.password"]),
            (
                "dd_api",
                vec!["additional_endpoints.https://app.datadoghq.eu.2", "api_key"],
            ),
            ("db_pass", vec!["instances.0.password"]),
            (
                "eu_key",
                vec!["additional_endpoints.https://app.datadoghq.eu.0"],
            ),
            ("tag", vec!["instances.0.tags.0"]),
        ]
        .into_iter()
        .map(|(handle, paths)| {
            (
                handle.to_owned(),
                paths.into_iter().map(str::to_owned).collect(),
            )
        })
        .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn a_tree_without_secrets_yields_nothing_and_a_bare_secret_has_the_empty_path() {
        assert!(find_handles(&json!({"a": [1, "x", {"b": false}]})).is_empty());
        let found = find_handles(&json!("ENC[root]"));
        assert_eq!(found.get("root"), Some(&vec![String::new()]));
    }
}
