//! `ENC[handle]` values: found, substituted, validated, refreshed, and never shown in dumps.

use std::path::Path;

use dogd_config::{Config, ConfigError, Environment, RawConfig, SecretValues, Source};
use serde_json::json;

const YAML: &str = "\
api_key: ENC[dd_api_key]
cmd_port: ENC[port]
proxy:
  https: http://user:ENC[not_a_whole_value]@proxy
logs_config:
  additional_endpoints:
    - host: intake.example.com
      api_key: ENC[logs_key]
";

fn raw(env: &[(&str, &str)]) -> RawConfig {
    RawConfig::from_yaml(
        Path::new("/etc/dogd/datadog.yaml"),
        YAML,
        &Environment::from_pairs(env.iter().copied()),
    )
    .expect("yaml")
}

fn secrets(pairs: &[(&str, &str)]) -> SecretValues {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn handles_are_found_in_nested_keys_lists_and_environment() {
    let handles = raw(&[("DD_SITE", "ENC[site]")]).secret_handles();
    let listed: Vec<(&str, Vec<&str>)> = handles
        .iter()
        .map(|(handle, used)| (handle.as_str(), used.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        listed,
        [
            ("dd_api_key", vec!["api_key"]),
            (
                "logs_key",
                vec!["logs_config.additional_endpoints.0.api_key"]
            ),
            ("port", vec!["cmd_port"]),
            ("site", vec!["DD_SITE"]),
        ]
    );
}

#[test]
fn resolved_secrets_are_substituted_and_validated_by_kind() {
    let config = Config::with_secrets(
        raw(&[]),
        &secrets(&[
            ("dd_api_key", "0123456789abcdef0123456789abcdef"),
            ("port", "6001"),
            ("logs_key", "logs-secret"),
        ]),
    )
    .expect("config");
    assert_eq!(
        config.get("api_key").expect("api_key").value,
        json!("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(config.get("cmd_port").expect("port").value, json!(6001));
    assert_eq!(
        config
            .get("logs_config.additional_endpoints")
            .expect("endpoints")
            .value,
        json!([{"host": "intake.example.com", "api_key": "logs-secret"}])
    );
    // Only whole-string ENC[] values are secrets.
    assert_eq!(
        config.get("proxy.https").expect("proxy").value,
        json!("http://user:ENC[not_a_whole_value]@proxy")
    );

    let bad = Config::with_secrets(
        raw(&[]),
        &secrets(&[
            ("dd_api_key", "k"),
            ("port", "not-a-port"),
            ("logs_key", "x"),
        ]),
    )
    .expect_err("port secret is not a number");
    assert!(
        bad.to_string().contains("invalid value for cmd_port"),
        "{bad}"
    );
}

#[test]
fn unresolved_handle_is_an_error_naming_it_and_its_use() {
    let error = Config::with_secrets(raw(&[]), &secrets(&[("dd_api_key", "k"), ("port", "1")]))
        .expect_err("missing");
    assert!(matches!(error, ConfigError::UnresolvedSecret { .. }));
    assert_eq!(
        error.to_string(),
        "secret ENC[logs_key] (used in logs_config.additional_endpoints.0.api_key) was not resolved: set secret_backend_command to a backend that knows it"
    );
    let error = Config::from_yaml(
        Path::new("/x.yaml"),
        "api_key: ENC[k]\n",
        &Environment::default(),
    )
    .expect_err("no backend");
    assert!(error.to_string().contains("ENC[k]"));
}

#[test]
fn dumps_show_handles_never_resolved_values() {
    let env = [("DD_HOSTNAME", "ENC[host]")];
    let config = Config::with_secrets(
        raw(&env),
        &secrets(&[
            ("dd_api_key", "SECRETAPIKEYVALUE"),
            ("port", "6001"),
            ("logs_key", "LOGSSECRET"),
            ("host", "secret-host"),
        ]),
    )
    .expect("config");
    let dump = config.effective_tree().to_string();
    for secret in ["SECRETAPIKEYVALUE", "LOGSSECRET", "secret-host"] {
        assert!(!dump.contains(secret), "{secret} leaked into {dump}");
    }
    let tree = config.effective_tree();
    assert_eq!(tree["api_key"], "ENC[dd_api_key]");
    assert_eq!(tree["hostname"], "ENC[host]");
    assert_eq!(tree["cmd_port"], "ENC[port]");
    assert_eq!(
        tree["logs_config"]["additional_endpoints"][0]["api_key"],
        "ENC[logs_key]"
    );
    // Non-secret declared values show their effective value, defaults included.
    assert_eq!(tree["server_timeout"], 30);
    assert_eq!(tree["agent_ipc"]["port"], 0);
}

#[test]
fn refresh_swaps_values_and_a_bad_refresh_changes_nothing() {
    let config = Config::with_secrets(
        raw(&[]),
        &secrets(&[("dd_api_key", "first"), ("port", "6001"), ("logs_key", "x")]),
    )
    .expect("config");
    config
        .refresh_secrets(&secrets(&[
            ("dd_api_key", "second"),
            ("port", "6002"),
            ("logs_key", "y"),
        ]))
        .expect("refresh");
    assert_eq!(
        config.get("api_key").expect("api_key").value,
        json!("second")
    );
    let port = config.get("cmd_port").expect("port");
    assert_eq!(port.value, json!(6002));
    assert!(matches!(port.source, Source::File(_)));

    let error = config
        .refresh_secrets(&secrets(&[
            ("dd_api_key", "third"),
            ("port", "99999"),
            ("logs_key", "z"),
        ]))
        .expect_err("invalid port");
    assert!(error.to_string().contains("cmd_port"));
    assert_eq!(
        config.get("api_key").expect("api_key").value,
        json!("second"),
        "unchanged"
    );
}

#[test]
fn backend_settings_are_readable_before_secrets() {
    let raw = RawConfig::from_yaml(
        Path::new("/x.yaml"),
        "secret_backend_command: /usr/local/bin/secrets\nsecret_backend_timeout: 5\n",
        &Environment::from_pairs([("DD_SECRET_BACKEND_ARGUMENTS", "--vault prod")]),
    )
    .expect("raw");
    assert_eq!(
        raw.declared("secret_backend_command").expect("ok"),
        Some(json!("/usr/local/bin/secrets"))
    );
    assert_eq!(
        raw.declared("secret_backend_timeout").expect("ok"),
        Some(json!(5))
    );
    assert_eq!(
        raw.declared("secret_backend_arguments").expect("ok"),
        Some(json!(["--vault", "prod"]))
    );
    assert_eq!(
        raw.declared("secret_backend_output_max_size").expect("ok"),
        Some(json!(1_048_576))
    );
}
