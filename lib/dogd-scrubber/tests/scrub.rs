//! The scrubber on realistic inputs: configuration files, agent logs, status JSON, environment
//! dumps, raw bytes, and generated text.

use dogd_scrubber::{REPLACEMENT, Scrubber};

const DATADOG_YAML: &str = r#"## Datadog Agent configuration
## Site and credentials

api_key: 0123456789abcdef0123456789abcdef
app_key: "0123456789abcdef0123456789abcdef01234567"
site: datadoghq.eu
hostname: web-01.prod.example.com
tags:
  - env:prod
  - team:platform

# api_key: fedcba9876543210fedcba9876543210
proxy:
  http: http://proxyuser:Pr0xyP@ss@proxy.internal:3128
  https: https://proxyuser:Pr0xyP@ss@proxy.internal:3128
  no_proxy:
    - 169.254.169.254
    - localhost

additional_endpoints:
  "https://app.datadoghq.com":
    - fedcba9876543210fedcba9876543210
    - 00112233445566778899aabbccddeeff
  "https://app.us3.datadoghq.com":
    - abcdefabcdefabcdefabcdefabcdef01

cluster_agent:
  enabled: true
  auth_token: s3cr3t-cluster-agent-token-value
  url: https://cluster-agent.example:5005

secret_backend_command: /opt/datadog-agent/bin/secret-helper
logs_enabled: true
logs_config:
  use_http: true
  processing_rules:
    - type: mask_sequences
      name: mask_passwords
      replace_placeholder: "[masked]"
"#;

const DATADOG_YAML_SCRUBBED: &str = r#"
api_key: "***************************bcdef"
app_key: "***********************************34567"
site: datadoghq.eu
hostname: web-01.prod.example.com
tags:
  - env:prod
  - team:platform

proxy:
  http: http://proxyuser:********@proxy.internal:3128
  https: https://proxyuser:********@proxy.internal:3128
  no_proxy:
    - 169.254.169.254
    - localhost

additional_endpoints:
  "https://app.datadoghq.com":
    - "***************************43210"
    - "***************************deeff"
  "https://app.us3.datadoghq.com":
    - "***************************def01"

cluster_agent:
  enabled: true
  auth_token: "********"
  url: https://cluster-agent.example:5005

secret_backend_command: /opt/datadog-agent/bin/secret-helper
logs_enabled: true
logs_config:
  use_http: true
  processing_rules:
    - type: mask_sequences
      name: mask_passwords
      replace_placeholder: "[masked]"
"#;

#[test]
fn a_realistic_datadog_yaml_keeps_its_structure_and_loses_its_credentials() {
    let scrubbed = Scrubber::new().scrub_yaml(DATADOG_YAML);
    assert_eq!(scrubbed, DATADOG_YAML_SCRUBBED);
}

#[test]
fn an_integration_config_hides_instance_credentials_but_keeps_enc_handles() {
    let conf = r#"init_config:
  service: postgres

instances:
  - host: db-primary.internal
    port: 5432
    username: datadog
    password: "hunter2-Pa55!"
    dbname: app
    tags:
      - db:primary
  - host: db-replica.internal
    username: datadog
    password: ENC[postgres_replica_password]
    ssl_key: /etc/datadog-agent/certs/client.key
    options:
      sslpassword: |
        multi-line
        passphrase
  - host: snmp-device
    community_strings:
    - 'public'
    - 'private'
    authKey: "doggiepass"
"#;
    let expected = r#"init_config:
  service: postgres

instances:
  - host: db-primary.internal
    port: 5432
    username: datadog
    password: "********"
    dbname: app
    tags:
      - db:primary
  - host: db-replica.internal
    username: datadog
    password: ENC[postgres_replica_password]
    ssl_key: /etc/datadog-agent/certs/client.key
    options:
      sslpassword: "********"
  - host: snmp-device
    community_strings: "********"
    authKey: "********"
"#;
    assert_eq!(Scrubber::new().scrub_yaml(conf), expected);
}

#[test]
fn the_text_scrubber_gives_the_agent_text_format_for_the_same_config() {
    let input = "api_key: aaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb\n\
                 list_api_key: [aaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb, aaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb]\n\
                 dict_app_key: {one: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb}\n\
                 random_url_key: 'mongodb+s.r-v://user:password@host:port'\n\
                 mysql_password: \"password\"\n\
                 token: 123465749798\n\
                 network_devices:\n  snmp_traps:\n    community_strings:\n      - 'password1'\n      - 'password2'\n\
                 privacy_key: password\n\
                 container_id: b32bd6f9b73ba7ccb64953a04b82b48e29dfafab65fd57ca01d3b94a0e024885\n";
    let expected = "api_key: \"***************************abbbb\"\n\
                    list_api_key: [\"***************************abbbb\", \"***************************abbbb\"]\n\
                    dict_app_key: {one: \"***********************************abbbb\"}\n\
                    random_url_key: 'mongodb+s.r-v://user:********@host:port'\n\
                    mysql_password: \"********\"\n\
                    token: \"********\"\n\
                    network_devices:\n  snmp_traps:\n    community_strings: \"********\"\n\
                    privacy_key: \"********\"\n\
                    container_id: b32bd6f9b73ba7ccb64953a04b82b48e29dfafab65fd57ca01d3b94a0e024885\n";
    assert_eq!(Scrubber::new().scrub_str(input), expected);
}

#[test]
fn a_log_excerpt_hides_bearer_tokens_query_api_keys_and_keys_in_sentences() {
    let log = "\
2024-05-02 10:15:00 UTC | CORE | INFO | (pkg/api/security/cert/cert_getter.go:98 in FetchAgentIPCCert) | IPC certificate loaded\n\
2024-05-02 10:15:01 UTC | CORE | DEBUG | (comp/api/api/apiimpl/server.go:112 in validate) | request headers: Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0\n\
2024-05-02 10:15:01 UTC | CORE | DEBUG | (pkg/util/http/transport.go:77 in dial) | retrying with \"Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0\"\n\
2024-05-02 10:15:01 UTC | CORE | WARN | (pkg/util/http/transport.go:81 in dial) | token refresh failed for Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln (expired)\n\
2024-05-02 10:15:02 UTC | CORE | ERROR | (comp/forwarder/defaultforwarder/transaction/transaction.go:433 in internalProcess) | Error while processing transaction: error \"403 Forbidden\" while sending transaction to \"https://app.datadoghq.eu/api/v1/series?api_key=0123456789abcdef0123456789abcdef\", rescheduling it\n\
2024-05-02 10:15:03 UTC | CORE | WARN | (pkg/config/setup/config.go:88 in checkKey) | the API key fedcba9876543210fedcba9876543210 was rejected by the intake\n\
2024-05-02 10:15:04 UTC | CORE | INFO | (pkg/collector/worker/check_logger.go:61 in CheckStarted) | check:cpu | Running check...\n";
    let expected = "\
2024-05-02 10:15:00 UTC | CORE | INFO | (pkg/api/security/cert/cert_getter.go:98 in FetchAgentIPCCert) | IPC certificate loaded\n\
2024-05-02 10:15:01 UTC | CORE | DEBUG | (comp/api/api/apiimpl/server.go:112 in validate) | request headers: Authorization: \"********\"\n\
2024-05-02 10:15:01 UTC | CORE | DEBUG | (pkg/util/http/transport.go:77 in dial) | retrying with \"Bearer ***********************************************************2b1a0\"\n\
2024-05-02 10:15:01 UTC | CORE | WARN | (pkg/util/http/transport.go:81 in dial) | token refresh failed for Bearer ********)\n\
2024-05-02 10:15:02 UTC | CORE | ERROR | (comp/forwarder/defaultforwarder/transaction/transaction.go:433 in internalProcess) | Error while processing transaction: error \"403 Forbidden\" while sending transaction to \"https://app.datadoghq.eu/api/v1/series?api_key=***************************bcdef\", rescheduling it\n\
2024-05-02 10:15:03 UTC | CORE | WARN | (pkg/config/setup/config.go:88 in checkKey) | the API key ***************************43210 was rejected by the intake\n\
2024-05-02 10:15:04 UTC | CORE | INFO | (pkg/collector/worker/check_logger.go:61 in CheckStarted) | check:cpu | Running check...\n";
    assert_eq!(Scrubber::new().scrub_str(log), expected);
}

#[test]
fn json_status_text_hides_keys_tokens_and_proxy_passwords() {
    let status = r#"{
  "config": {
    "api_key": "0123456789abcdef0123456789abcdef",
    "site": "datadoghq.eu",
    "proxy": {"https": "http://user:s3cret@proxy.internal:3128"},
    "cluster_agent": {"auth_token": "abcdefghijklmnopqrstuvwxyz012345"},
    "dd-api-key": "not-a-hex-key",
    "password": "p@ss word"
  },
  "version": "7.62.1",
  "hostname": "web-01"
}"#;
    let expected = r#"{
  "config": {
    "api_key": "***************************bcdef",
    "site": "datadoghq.eu",
    "proxy": {"https": "http://user:********@proxy.internal:3128"},
    "cluster_agent": {"auth_token": "********"},
    "dd-api-key": "********",
    "password": "********"
  },
  "version": "7.62.1",
  "hostname": "web-01"
}"#;
    assert_eq!(Scrubber::new().scrub_str(status), expected);
}

#[test]
fn an_environment_dump_hides_dd_api_key_in_every_form() {
    let env = "DD_API_KEY=3290abeefc68e1bbe852a25252bad88c\n\
               DD_APP_KEY=not.hex-but-secret\n\
               DD_SITE=datadoghq.eu\n\
               PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin\n\
               DD_PROXY_HTTPS=http://svc:Zx9!tQ@proxy:3128\n\
               DD_CLUSTER_AGENT_AUTH_TOKEN=abcdefghijklmnopqrstuvwxyz0123456789\n";
    let expected = "DD_API_KEY=***************************ad88c\n\
                    DD_APP_KEY=********\n\
                    DD_SITE=datadoghq.eu\n\
                    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin\n\
                    DD_PROXY_HTTPS=http://svc:********@proxy:3128\n\
                    DD_CLUSTER_AGENT_AUTH_TOKEN=********\n";
    assert_eq!(Scrubber::new().scrub_str(env), expected);
}

#[test]
fn known_secrets_added_at_runtime_are_hidden_in_later_calls() {
    let scrubber = Scrubber::new();
    let line = "resolved postgres password Tr0ub4dor&3 for instance db-replica, ipc token 8Jq2-xV9";
    assert_eq!(scrubber.scrub_str(line), line);

    scrubber.add_known_secrets(["Tr0ub4dor&3".to_owned(), "8Jq2-xV9\n".to_owned()]);
    assert_eq!(
        scrubber.scrub_str(line),
        "resolved postgres password ******** for instance db-replica, ipc token ********"
    );
    assert_eq!(
        scrubber
            .scrub_yaml("instances:\n  - host: db-replica\n    extra_args: --auth=Tr0ub4dor&3\n"),
        "instances:\n  - host: db-replica\n    extra_args: --auth=********\n"
    );
    assert_eq!(
        scrubber.scrub_bytes(b"\xfftoken 8Jq2-xV9\xfe"),
        b"\xfftoken ********\xfe"
    );
    // A whole plain YAML value is quoted once hidden, so the YAML stays valid.
    assert_eq!(
        scrubber.scrub_yaml("instances:\n  - host: db-replica\n    initial_value: Tr0ub4dor&3\n"),
        "instances:\n  - host: db-replica\n    initial_value: \"********\"\n"
    );
    // A resolved API key is shown like the key rules show keys, wherever it appears.
    scrubber.add_known_secrets(["0123456789abcdef0123456789abcdef".to_owned()]);
    assert_eq!(
        scrubber.scrub_str("key=0123456789abcdef0123456789abcdefXYZ"),
        "key=***************************bcdefXYZ"
    );
}

#[test]
fn known_secrets_can_be_added_while_other_threads_scrub() {
    let scrubber = Scrubber::new();
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let scrubber = scrubber.clone();
            scope.spawn(move || {
                for round in 0..50 {
                    scrubber.add_known_secrets([format!("secret-{worker}-{round}")]);
                    let text = format!("value secret-{worker}-{round} here");
                    assert_eq!(scrubber.scrub_str(&text), "value ******** here");
                }
            });
        }
    });
    assert_eq!(scrubber.known_secret_count(), 200);
}

#[test]
fn text_without_secrets_comes_back_byte_identical() {
    let texts = [
        "",
        "\n",
        "no newline at the end",
        "# a comment line, kept by the text scrubber\nsite: datadoghq.eu\n\n\nlog_level: info\n",
        "windows\r\nline\r\nbreaks\r\n",
        "2024-05-02 10:15:00 UTC | CORE | INFO | (pkg/collector/scheduler/scheduler.go:84 in Enter) | Scheduling check cpu with an interval of 15s\n\
         2024-05-02 10:15:00 UTC | CORE | INFO | (pkg/logs/launchers/file/launcher.go:233 in scan) | Tailing /var/log/app.log from offset 1024 (id: file:/var/log/app.log)\n",
        "container 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0 started\n",
        "bonjour, naïve café ☕ — 東京 ✓\t\ttabs\n",
        "ENC[api_key_handle] and a path /etc/datadog-agent/auth_token\n",
    ];
    let scrubber = Scrubber::new();
    for text in texts {
        assert_eq!(scrubber.scrub_str(text), text, "{text:?}");
        assert_eq!(
            scrubber.scrub_bytes(text.as_bytes()),
            text.as_bytes(),
            "{text:?}"
        );
    }
    let yaml =
        "site: datadoghq.eu\nlogs_config:\n  container_collect_all: true\n  processing_rules: []\n";
    assert_eq!(scrubber.scrub_yaml(yaml), yaml);
}

#[test]
fn non_utf8_bytes_do_not_panic_and_stay_in_place() {
    let scrubber = Scrubber::new();
    let input = b"\xff\xfe log \x80 password: hunter2\xc3\x28 api_key=0123456789abcdef0123456789abcdef\xed\xa0\x80\n";
    let out = scrubber.scrub_bytes(input);
    assert_eq!(
        out,
        b"\xff\xfe log \x80 password: \"********\"\n".to_vec(),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    // The private-use characters used internally, present in the text itself, become U+FFFD.
    let mut tricky = "\u{10FE41} token=abc ".as_bytes().to_vec();
    tricky.push(0xff);
    let mut expected = "\u{FFFD} token=******** ".as_bytes().to_vec();
    expected.push(0xff);
    assert_eq!(scrubber.scrub_bytes(&tricky), expected);
}

#[test]
fn a_pem_private_key_block_is_removed() {
    let text = "tls:\n  key: |\n    -----BEGIN EC PRIVATE KEY-----\n    MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oWg8Q6VYfR9doAoGCCqGSM49\n    AwEHoUQDQgAE7p4DY3pUyA1m8Ts3kbnBEsoHEZbmX4aL9C4YUAn1o5o=\n    -----END EC PRIVATE KEY-----\n  cert_file: /etc/dogd/cert.pem\n";
    let expected_text = "tls:\n  key: |\n    ********\n  cert_file: /etc/dogd/cert.pem\n";
    let expected_yaml = "tls:\n  key: |\n    ********\n  cert_file: /etc/dogd/cert.pem\n";
    let scrubber = Scrubber::new();
    assert_eq!(scrubber.scrub_str(text), expected_text);
    assert_eq!(scrubber.scrub_yaml(text), expected_yaml);

    let json = r#"{"private_key_pem": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n", "ok": true}"#;
    assert_eq!(
        scrubber.scrub_str(json),
        r#"{"private_key_pem": "********\n", "ok": true}"#
    );
}

/// A small deterministic generator (xorshift), so the property test needs no extra crate.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdefABCDEF"[self.below(22)]))
            .collect()
    }
}

const FRAGMENTS: &[&str] = &[
    "api_key",
    "app_key",
    "application_key",
    "DD_API_KEY",
    "password",
    "pass",
    "pwd",
    "token",
    "auth_token",
    "secret",
    "client_secret",
    "access_key",
    "private_key",
    "x-api-key",
    "Authorization",
    "authorization",
    "community_strings",
    "community",
    "cookie",
    "jwt",
    "Bearer ",
    "bearer",
    "http://",
    "mongodb+srv://",
    "user",
    "@",
    ":",
    ": ",
    "=",
    " = ",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    "-",
    "- ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "#",
    "|",
    ">",
    "*",
    "********",
    "ENC[",
    "ENC[handle]",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "-----BEGIN CERTIFICATE-----",
    "MIIBOgIBAAJBAKj34GkxFhD9",
    "DDRCM_ABCDEF12345",
    "?",
    "&",
    "site",
    "datadoghq.eu",
    "é",
    "東",
    "☕",
    "\u{10FE20}",
    "value",
    "hunter2",
    "s3cr3t",
];

fn generated(rng: &mut Gen) -> String {
    let mut text = String::new();
    for _ in 0..rng.below(40) {
        match rng.below(10) {
            0 => text.push_str(&rng.hex(32)),
            1 => text.push_str(&rng.hex(40)),
            2 => text.push_str(&rng.hex(64)),
            3 => {
                let len = rng.below(50);
                text.push_str(&rng.hex(len));
            }
            _ => text.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]),
        }
    }
    text
}

#[test]
fn scrubbing_never_panics_and_scrubbing_twice_changes_nothing() {
    let scrubber = Scrubber::new();
    scrubber.add_known_secrets(["hunter2".to_owned(), "s3cr3t-known".to_owned()]);
    let mut rng = Gen(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2000 {
        let text = generated(&mut rng);

        let once = scrubber.scrub_str(&text);
        assert_eq!(scrubber.scrub_str(&once), once, "scrub_str of {text:?}");
        assert!(!once.contains("hunter2"), "{text:?}");

        let once = scrubber.scrub_yaml(&text);
        assert_eq!(scrubber.scrub_yaml(&once), once, "scrub_yaml of {text:?}");

        let mut bytes = text.into_bytes();
        for _ in 0..rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            bytes.insert(at, [0xff, 0x80, 0xc3, 0xfe][rng.below(4)]);
        }
        let once = scrubber.scrub_bytes(&bytes);
        assert_eq!(
            scrubber.scrub_bytes(&once),
            once,
            "scrub_bytes of {bytes:?}"
        );
    }
    assert_eq!(REPLACEMENT, "********");
}
