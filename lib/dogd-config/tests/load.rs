//! Loading `datadog.yaml` + `DD_*` environment overrides through the public API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dogd_config::{
    ApiServerConfig, Config, ConfigError, Environment, GeneralConfig, LogConfig, LogLevel, Source,
};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("datadog.yaml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

fn load_error(text: &str, env: &[(&str, &str)]) -> (PathBuf, String) {
    let (_dir, path) = write_config(text);
    let error = Config::load(Some(&path), &Environment::from_pairs(env.iter().copied()))
        .expect_err("config must be rejected");
    (path, error.to_string())
}

#[test]
fn real_agent_datadog_yaml_loads_with_unknown_keys_kept() {
    let path = fixture("agent-datadog.yaml");
    let config = Config::load(Some(&path), &Environment::default()).expect("load");

    let port = config.get("cmd_port").expect("cmd_port");
    assert_eq!(port.value, json!(5101));
    assert_eq!(port.source, Source::File(path.clone().into()));

    // Keys dogd does not declare are kept and readable.
    let apm = config
        .get("apm_config.receiver_port")
        .expect("unknown nested key");
    assert_eq!(apm.value, json!(8126));
    assert_eq!(
        config.get("GUI_port").expect("case-insensitive").value,
        json!(5002)
    );
    assert!(config.get("no.such.key").is_none());

    let general = GeneralConfig::from_config(&config).expect("general");
    assert_eq!(general.site, "datadoghq.eu");
    assert_eq!(general.tags, ["team:core", "env:prod", "role:web"]);
    assert_eq!(
        general.api_key.expect("api key").expose(),
        "0123456789abcdef0123456789abcdef"
    );
    let log = LogConfig::from_config(&config).expect("log");
    assert_eq!(log.level, LogLevel::Warn);
    let api = ApiServerConfig::from_config(&config).expect("api");
    assert_eq!(api.cmd_port, 5101);
    assert_eq!(api.ipc_server, Some(("localhost".to_owned(), 5009)));
    assert_eq!(api.server_timeout, Duration::from_secs(15));
    assert_eq!(api.config_refresh_interval, Duration::from_secs(60));

    // Every leaf shows up in the effective listing.
    let keys: Vec<String> = config.settings().into_iter().map(|(key, _)| key).collect();
    assert!(keys.contains(&"otlp_config.receiver.protocols.grpc.endpoint".to_owned()));
    assert!(keys.contains(&"shutdown_timeout".to_owned()));
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    let (_dir, path) =
        write_config("cmd_port: 6000\nagent_ipc:\n  port: 7000\nsite: datadoghq.eu\n");
    let env = Environment::from_pairs([
        ("DD_CMD_PORT", "6001"),
        ("DD_AGENT_IPC_PORT", "7001"),
        ("DD_LOG_LEVEL", "debug"),
        ("DD_HOSTNAME", ""),
        ("DD_TAGS", "a:b c:d"),
    ]);
    let config = Config::load(Some(&path), &env).expect("load");

    let port = config.get("cmd_port").expect("cmd_port");
    assert_eq!(
        (port.value, port.source),
        (json!(6001), Source::Env("DD_CMD_PORT".into()))
    );
    let ipc = config.get("agent_ipc.port").expect("agent_ipc.port");
    assert_eq!(
        (ipc.value, ipc.source),
        (json!(7001), Source::Env("DD_AGENT_IPC_PORT".into()))
    );
    let site = config.get("site").expect("site");
    assert_eq!(
        (site.value, site.source),
        (json!("datadoghq.eu"), Source::File(path.clone().into()))
    );
    let timeout = config.get("server_timeout").expect("server_timeout");
    assert_eq!(
        (timeout.value, timeout.source),
        (json!(30), Source::Default)
    );
    // An empty variable is "unset", so the hostname stays unresolved.
    assert!(config.get("hostname").is_none());
    assert_eq!(
        config.get_string_list("tags").expect("tags"),
        ["a:b", "c:d"]
    );
    assert_eq!(
        config.get_log_level("log_level").expect("level"),
        LogLevel::Debug
    );
}

#[test]
fn runtime_changes_win_and_are_validated() {
    let config =
        Config::load(None, &Environment::from_pairs([("DD_LOG_LEVEL", "warn")])).expect("load");
    config
        .set_runtime("log_level", &json!("debug"))
        .expect("valid level");
    let level = config.get("log_level").expect("log_level");
    assert_eq!(
        (level.value, level.source),
        (json!("debug"), Source::Runtime)
    );

    let error = config
        .set_runtime("log_level", &json!("loud"))
        .expect_err("invalid level");
    assert!(
        error
            .to_string()
            .contains("invalid value for log_level: \"loud\" (from runtime)")
    );
    assert_eq!(
        config.get("log_level").expect("unchanged").value,
        json!("debug")
    );
    assert!(matches!(
        config.set_runtime("nope", &json!(1)),
        Err(ConfigError::UnknownKey { .. })
    ));
}

#[test]
fn defaults_need_no_file_and_live_in_a_per_user_state_dir() {
    let env = Environment::from_pairs([("HOME", "/home/alice")]);
    let config = Config::load(None, &env).expect("defaults");
    assert_eq!(config.file_path(), None);
    let api = ApiServerConfig::from_config(&config).expect("api");
    assert_eq!((api.cmd_host.as_str(), api.cmd_port), ("127.0.0.1", 5001));
    assert_eq!(api.ipc_server, None);
    assert_eq!(api.server_timeout, Duration::from_secs(30));
    assert_eq!(
        api.auth_token_path,
        Path::new("/home/alice/.local/state/dogd/auth_token")
    );
    assert_eq!(
        api.ipc_cert_path,
        Path::new("/home/alice/.local/state/dogd/ipc_cert.pem")
    );
    let general = GeneralConfig::from_config(&config).expect("general");
    assert_eq!(general.shutdown_timeout, Duration::from_secs(30));
    assert!(general.api_key.is_none());

    let xdg = Environment::from_pairs([("HOME", "/home/alice"), ("XDG_STATE_HOME", "/state")]);
    let general =
        GeneralConfig::from_config(&Config::load(None, &xdg).expect("load")).expect("general");
    assert_eq!(general.run_path, Path::new("/state/dogd"));
}

#[test]
fn deprecated_ipc_address_wins_over_cmd_host_with_a_warning() {
    let (_dir, path) = write_config("cmd_host: 127.0.0.1\nipc_address: localhost\n");
    let config = Config::load(Some(&path), &Environment::default()).expect("load");
    assert_eq!(
        ApiServerConfig::from_config(&config).expect("api").cmd_host,
        "localhost"
    );
    assert_eq!(
        config.warnings(),
        ["ipc_address is deprecated, use cmd_host instead"]
    );
}

#[test]
fn cert_defaults_next_to_a_configured_token() {
    let (_dir, path) = write_config("auth_token_file_path: /etc/dd/auth_token\n");
    let api = ApiServerConfig::from_config(
        &Config::load(Some(&path), &Environment::default()).expect("load"),
    )
    .expect("api");
    assert_eq!(api.auth_token_path, Path::new("/etc/dd/auth_token"));
    assert_eq!(api.ipc_cert_path, Path::new("/etc/dd/ipc_cert.pem"));
}

#[test]
fn port_out_of_range_in_file_names_key_value_and_file() {
    let (path, message) = load_error("cmd_port: 70000\n", &[]);
    assert_eq!(
        message,
        format!(
            "invalid value for cmd_port: 70000 (from {}): must be between 0 and 65535",
            path.display()
        )
    );
}

#[test]
fn string_where_a_number_goes_names_the_nested_key() {
    let (path, message) = load_error("agent_ipc:\n  port: five\n", &[]);
    assert_eq!(
        message,
        format!(
            "invalid value for agent_ipc.port: \"five\" (from {}): expected a whole number",
            path.display()
        )
    );
}

#[test]
fn bad_environment_value_names_the_variable() {
    let (_path, message) = load_error("cmd_port: 5001\n", &[("DD_DOGSTATSD_PORT", "udp")]);
    assert_eq!(
        message,
        "invalid value for dogstatsd_port: \"udp\" (from environment variable DD_DOGSTATSD_PORT): expected a whole number"
    );
}

#[test]
fn invalid_secret_value_is_redacted_in_the_error() {
    let (_path, message) = load_error("api_key: [0123456789abcdef]\n", &[]);
    assert!(message.contains("invalid value for api_key"), "{message}");
    assert!(!message.contains("0123456789"), "{message}");
}

#[test]
fn bad_yaml_names_the_file_and_line() {
    let (path, message) = load_error("cmd_port: 5001\nlog_level: [info\n", &[]);
    assert!(
        message.starts_with(&format!("config file {} is not valid YAML", path.display())),
        "{message}"
    );
    assert!(message.contains("line"), "{message}");
}

#[test]
fn top_level_list_is_rejected() {
    let (_path, message) = load_error("- a\n- b\n", &[]);
    assert!(
        message.contains("must hold a mapping of settings at its top level, found a list"),
        "{message}"
    );
}

#[test]
fn missing_or_unreadable_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("absent.yaml");
    let error = Config::load(Some(&missing), &Environment::default()).expect_err("missing");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read config file {}", missing.display()))
    );

    // A directory given as the file is unreadable too.
    let error = Config::load(Some(dir.path()), &Environment::default()).expect_err("directory");
    assert!(matches!(error, ConfigError::Read { .. }));
}

#[test]
fn empty_file_is_an_empty_configuration() {
    let (_dir, path) = write_config("# nothing configured yet\n");
    let config = Config::load(Some(&path), &Environment::default()).expect("empty file loads");
    assert_eq!(
        config.get("cmd_port").expect("default").source,
        Source::Default
    );
}
