//! The text rules: the agent's replacers (`pkg/util/scrubber/default.go`) in the agent's order, plus
//! a few of ours, compiled once for the whole process (they are immutable).
//!
//! Every rule is idempotent on its own output, and every replacement contains `*`, which no rule
//! reads as part of a credential: scrubbing scrubbed text changes nothing.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex_lite::{Captures, Regex};

pub(crate) use crate::REPLACEMENT;

/// Stars in front of the last five characters of a 32-character API key.
pub(crate) const API_KEY_STARS: usize = 27;
/// Stars in front of the last five characters of a 40-character application key.
pub(crate) const APP_KEY_STARS: usize = 35;
/// Stars in front of the last five characters of a 64-hex-character bearer token.
const BEARER_STARS: usize = 59;

/// How many trailing characters of an API or application key stay visible.
pub(crate) const VISIBLE_KEY_CHARS: usize = 5;

type ReplaceFn = fn(&Captures<'_>) -> String;
type PrefilterFn = fn(&Probe<'_>) -> bool;

/// One single-line replacer.
struct LineRule {
    /// Whether the rule can match at all: `regex-lite` has no literal prefilter and is slow, so
    /// a cheap necessary condition keeps ordinary log lines from running the regex.
    could_match: PrefilterFn,
    re: Regex,
    replace: ReplaceFn,
}

/// All rules, compiled.
pub(crate) struct Rules {
    line: Vec<LineRule>,
    pem_block: Regex,
    pem_truncated_private_key: Regex,
    community_strings: Regex,
}

/// The process-wide compiled rules.
pub(crate) fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(Rules::compile)
}

fn compile(pattern: &str) -> Regex {
    // The patterns are constants of this file; the unit tests compile every one of them.
    Regex::new(pattern).expect("built-in scrubber pattern compiles")
}

fn rule(could_match: PrefilterFn, pattern: &str, replace: ReplaceFn) -> LineRule {
    LineRule {
        could_match,
        re: compile(pattern),
        replace,
    }
}

/// A line as the prefilters see it.
struct Probe<'a> {
    text: &'a str,
    /// `text` in ASCII lower case (same byte offsets).
    lower: String,
    /// Whether `text` holds at least 32 hexadecimal digits in a row.
    hex_run: bool,
}

impl<'a> Probe<'a> {
    fn new(text: &'a str) -> Self {
        Probe {
            text,
            lower: text.to_ascii_lowercase(),
            hex_run: has_hex_run(text, 32),
        }
    }

    fn contains_any(&self, needles: &[&str]) -> bool {
        needles.iter().any(|n| self.lower.contains(n))
    }

    /// Whether one of `needles` (lower case) is followed by an optional quote, blanks and `:`
    /// or `=`; with `word_tail`, word characters and `-` may come first (`password_file:`).
    fn key_then_separator(&self, needles: &[&str], word_tail: bool) -> bool {
        let is_blank = |c: char| matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c');
        needles.iter().any(|needle| {
            self.lower.match_indices(needle).any(|(at, _)| {
                let mut rest = &self.lower[at + needle.len()..];
                if word_tail {
                    rest = rest.trim_start_matches(|c: char| {
                        c.is_ascii_alphanumeric() || c == '_' || c == '-'
                    });
                }
                let rest = rest.strip_prefix(['"', '\'']).unwrap_or(rest);
                rest.trim_start_matches(is_blank).starts_with([':', '='])
            })
        })
    }

    /// Whether some run of non-blank characters holds a `:` and, after it, an `@`.
    fn has_userinfo(&self) -> bool {
        self.text.contains('@')
            && self.text.split_ascii_whitespace().any(|word| {
                word.find(':')
                    .is_some_and(|colon| word[colon..].contains('@'))
            })
    }
}

/// Value characters of the `key: value` / `key=value` rules of ours: a value stops at whitespace,
/// quotes and the separators of query strings, JSON and flow collections; it may not start with
/// a YAML indicator (`|`, `>`, `[`, `{`, `&`, `*`, `!`, `#`), so block scalars and collections are
/// left to the other rules, and neither with `*`, so masked values are left alone.
macro_rules! named_value {
    () => {
        r#"(["']?)([^\s"',;&}\]\[{|>#*!][^\s"',;&}\]]*)"#
    };
}

impl Rules {
    fn compile() -> Rules {
        let line = vec![
            // hintedAPIKeyReplacer: any `api_key=<value>`, whatever its shape, keeps its last 5.
            rule(
                |p| p.contains_any(&["api_key=", "apikey="]),
                r"((?i:api_?key)=)\b[a-zA-Z0-9]+([a-zA-Z0-9]{5})\b",
                |c| format!("{}{}{}", g(c, 1), stars(API_KEY_STARS), g(c, 2)),
            ),
            // hintedAPPKeyReplacer.
            rule(
                |p| p.contains_any(&["app_key=", "appkey=", "application_key=", "applicationkey="]),
                r"((?i:ap(?:p|plication)_?key)=)\b[a-zA-Z0-9]+([a-zA-Z0-9]{5})\b",
                |c| format!("{}{}{}", g(c, 1), stars(APP_KEY_STARS), g(c, 2)),
            ),
            // hintedBearerReplacer: a 64-hex bearer token keeps its last 5.
            rule(
                |p| p.hex_run && p.text.contains("Bearer "),
                r"\bBearer [a-fA-F0-9]{59}([a-fA-F0-9]{5})\b",
                |c| format!("Bearer {}{}", stars(BEARER_STARS), g(c, 1)),
            ),
            // hintedBearerInvalidReplacer: any other bearer token goes whole (to the last word).
            rule(
                |p| p.text.contains("Bearer"),
                r"\bBearer\s+[^*]+\b",
                |_| format!("Bearer {REPLACEMENT}"),
            ),
            // httpHeaderKeyReplacer, httpHeaderTokenReplacer, httpHeaderAuthReplacer,
            // httpHeaderSecretReplacer (same replacement, one pattern).
            rule(
                |p| {
                    p.lower.contains("x-")
                        && p.key_then_separator(&["key", "token", "auth", "secret"], false)
                },
                r"(?i)(\s*x-[\w-]*(?:key|token|auth|secret)\s*:)(.+)",
                yaml_value,
            ),
            // exactKeyReplacer.
            rule(
                |p| {
                    p.key_then_separator(
                        &[
                            "auth-tenantid",
                            "authority",
                            "api-key",
                            "lodauth",
                            "websocket-key",
                            "statuskey",
                            "cookie",
                            "token",
                        ],
                        false,
                    )
                },
                r"(?i)(\s*(?:auth-tenantid|authority|cainzapp-api-key|cms-svc-api-key|lodauth|sec-websocket-key|statuskey|cookie|private-token|kong-admin-token|accesstoken|session_token)\s*:)(.+)",
                yaml_value,
            ),
            // privateKeyReplacer (key ending in `private_key`).
            rule(
                |p| p.key_then_separator(&["private_key"], false),
                r"(?i)(^[\s-]*[\w-]*private_key\s*:)(.+)",
                yaml_value,
            ),
            // apiKeyReplacerYAML: a bare 32-hex value after a YAML indicator is quoted.
            rule(
                |p| p.hex_run,
                r"([-:,\[{])(\s+)?\b[a-fA-F0-9]{27}([a-fA-F0-9]{5})\b",
                |c| {
                    format!(
                        "{}{}\"{}{}\"",
                        g(c, 1),
                        g(c, 2),
                        stars(API_KEY_STARS),
                        g(c, 3)
                    )
                },
            ),
            // apiKeyReplacer.
            rule(
                |p| p.hex_run,
                r"\b[a-fA-F0-9]{27}([a-fA-F0-9]{5})\b",
                |c| format!("{}{}", stars(API_KEY_STARS), g(c, 1)),
            ),
            // appKeyReplacerYAML.
            rule(
                |p| p.hex_run,
                r"([-:,\[{])(\s+)?\b[a-fA-F0-9]{35}([a-fA-F0-9]{5})\b",
                |c| {
                    format!(
                        "{}{}\"{}{}\"",
                        g(c, 1),
                        g(c, 2),
                        stars(APP_KEY_STARS),
                        g(c, 3)
                    )
                },
            ),
            // appKeyReplacer.
            rule(
                |p| p.hex_run,
                r"\b[a-fA-F0-9]{35}([a-fA-F0-9]{5})\b",
                |c| format!("{}{}", stars(APP_KEY_STARS), g(c, 1)),
            ),
            // rcAppKeyReplacer (remote-configuration keys).
            rule(
                |p| p.text.contains("DDRCM_"),
                r"\bDDRCM_[A-Z0-9]+([A-Z0-9]{5})\b",
                |c| format!("{}{}", stars(APP_KEY_STARS), g(c, 1)),
            ),
            // uriPasswordReplacer: `scheme://user:password@host` and `user:password@host`. The
            // user may not hold `=`, so `PROXY=http://u:p@h` keeps its scheme.
            rule(
                |p| p.has_userinfo(),
                r#"(?i)([a-z][a-z0-9+,.\-]+://|\b)([^:\s=]+):([^\s|"]+)@"#,
                |c| {
                    if is_enc(g(c, 3)) {
                        g(c, 0).to_owned()
                    } else {
                        format!("{}{}:{REPLACEMENT}@", g(c, 1), g(c, 2))
                    }
                },
            ),
            // yamlPasswordReplacer: any YAML key holding `pass` or `pwd`.
            rule(
                |p| p.key_then_separator(&["pass", "pwd"], true),
                r"(?i)(\s*[\w-]*(?:pass(?:word)?|pwd)[\w-]*\s*:)(.+)",
                yaml_value,
            ),
            // passwordReplacer: `password=…`, `"password": "…"`, `--db_pwd=…`. A quoted value is
            // hidden up to its closing quote (the agent stops at the first blank).
            rule(
                |p| p.key_then_separator(&["pass", "password", "pswd", "pwd"], false),
                r#"(?i)(["']?(?:pass(?:word)?|pswd|pwd)["']?)(=| = |: )(?:"([^"]*)"|'([^']*)'|(["']?)([0-9A-Za-z#!$%&()*+,\-./:<=>?@\[\\\]^_{|}~]+))"#,
                |c| {
                    let (head, sep) = (g(c, 1), g(c, 2));
                    let (quote, value) = if let Some(v) = c.get(3) {
                        ("\"", v.as_str())
                    } else if let Some(v) = c.get(4) {
                        ("'", v.as_str())
                    } else {
                        ("", g(c, 6))
                    };
                    if is_enc(value) {
                        return g(c, 0).to_owned();
                    }
                    if quote.is_empty() {
                        format!("{head}{sep}{}{REPLACEMENT}", g(c, 5))
                    } else {
                        format!("{head}{sep}{quote}{REPLACEMENT}{quote}")
                    }
                },
            ),
            // tokenReplacer (keys ending in `token` or `jwt`).
            rule(
                |p| p.key_then_separator(&["token", "jwt"], false),
                r"(?i)(^[\s-]*[\w-]*(?:token|jwt)\s*:)(.+)",
                yaml_value,
            ),
            // consumerKeyAndTokenIDReplacer.
            rule(
                |p| p.key_then_separator(&["consumer_key", "token_id"], false),
                r"(?i)(\s*(?:consumer_key|token_id)\s*:)(.+)",
                yaml_value,
            ),
            // secretReplacer (keys ending in `_secret` or `_secret_id`; also a bare `secret`).
            rule(
                |p| p.key_then_separator(&["secret", "secret_id"], false),
                r"(?i)(^[\s-]*(?:[\w-]*[_-])?secret(?:_id)?\s*:)(.+)",
                yaml_value,
            ),
            // accessKeyReplacer (keys ending in `access_key`).
            rule(
                |p| p.key_then_separator(&["access_key"], false),
                r"(?i)(^[\s-]*[\w-]*access_key\s*:)(.+)",
                yaml_value,
            ),
            // snmpReplacer (SNMP credentials and `Authorization`).
            rule(
                |p| {
                    p.key_then_separator(
                        &[
                            "community_string",
                            "community",
                            "authkey",
                            "auth_key",
                            "privkey",
                            "priv_key",
                            "authentication_key",
                            "privacy_key",
                            "authorization",
                        ],
                        false,
                    )
                },
                r"(?i)(\s*(?:community_string|auth_?key|priv_?key|community|authentication_key|privacy_key|authorization)\s*:)(.+)",
                yaml_value,
            ),
            // Ours: an API key by name whatever its shape (`api_key: short`, `DD_API_KEY=a.b`,
            // `"dd-api-key": "…"`): the agent does this only when it walks a parsed YAML.
            rule(
                |p| p.key_then_separator(&["api_key", "apikey", "api-key"], false),
                concat!(
                    r#"(?i)(\b(?:[\w-]*[_-])?api[_-]?key["']?[ \t]*[:=][ \t]*)"#,
                    named_value!()
                ),
                |c| named_value(c, KeyKind::Api),
            ),
            // Ours: the same for application keys.
            rule(
                |p| {
                    p.key_then_separator(
                        &[
                            "app_key",
                            "appkey",
                            "app-key",
                            "application_key",
                            "applicationkey",
                            "application-key",
                        ],
                        false,
                    )
                },
                concat!(
                    r#"(?i)(\b(?:[\w-]*[_-])?ap(?:p|plication)[_-]?key["']?[ \t]*[:=][ \t]*)"#,
                    named_value!()
                ),
                |c| named_value(c, KeyKind::App),
            ),
            // Ours: tokens and secrets by key name in JSON, query strings and `key=value`
            // (`"auth_token": "…"`, `?access_token=…`), which the agent's YAML-line rules miss.
            rule(
                |p| {
                    p.key_then_separator(
                        &[
                            "token",
                            "jwt",
                            "secret",
                            "secret_id",
                            "access_key",
                            "private_key",
                            "passwd",
                            "pswd",
                        ],
                        false,
                    )
                },
                concat!(
                    r#"(?i)(\b[\w-]*(?:token|jwt|secret|secret_id|access_key|private_key|passwd|pswd)["']?[ \t]*[:=][ \t]*)"#,
                    named_value!()
                ),
                |c| named_value(c, KeyKind::Other),
            ),
        ];
        Rules {
            line,
            // certReplacer; the body also admits the `Proc-Type:`/`DEK-Info:` headers of
            // encrypted keys and JSON-escaped line breaks (`\n`).
            pem_block: compile(r"-----BEGIN (?:.*)-----[A-Za-z0-9=+/\s:,\\-]*-----END (?:.*)-----"),
            // Ours: a private key cut before its END line (a truncated log line).
            // It takes the rest of the BEGIN line and the following lines made of base64 only.
            pem_truncated_private_key: compile(
                r"(?m)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[A-Za-z0-9=+/\\ \t]*(?:\r?\n[ \t]*[A-Za-z0-9=+/\\]*[ \t\r]*$)*",
            ),
            // snmpMultilineReplacer: `community_strings:` with a block or flow list.
            community_strings: compile(
                r"(community_strings[ \t]*:)[ \t]*(?:(?:\r?\n[ \t]*-[ \t]+[^\r\n]*)+|\[[^\]]*\])",
            ),
        }
    }

    /// Runs the single-line rules on one line (no line break inside).
    pub(crate) fn scrub_line<'a>(&self, line: &'a str) -> Cow<'a, str> {
        if line.trim().is_empty() {
            return Cow::Borrowed(line);
        }
        let mut current: Cow<'a, str> = Cow::Borrowed(line);
        let mut probe = Probe::new(line);
        for rule in &self.line {
            if !(rule.could_match)(&probe) {
                continue;
            }
            let replaced = match rule.re.replace_all(&current, rule.replace) {
                Cow::Owned(replaced) => replaced,
                Cow::Borrowed(_) => continue,
            };
            current = Cow::Owned(replaced);
            probe = Probe::new(&current);
        }
        current
    }

    /// Runs the single-line rules on every line, keeping line breaks (`\n` or `\r\n`) as they are.
    pub(crate) fn scrub_lines(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for (content, end) in lines(text) {
            out.push_str(&self.scrub_line(content));
            out.push_str(end);
        }
        out
    }

    /// Removes PEM blocks (whole ones, then private keys cut before their END line).
    pub(crate) fn scrub_pem<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !text.contains("-----BEGIN ") {
            return Cow::Borrowed(text);
        }
        let whole = self.pem_block.replace_all(text, REPLACEMENT);
        match self
            .pem_truncated_private_key
            .replace_all(&whole, REPLACEMENT)
        {
            Cow::Owned(cut) => Cow::Owned(cut),
            Cow::Borrowed(_) => whole,
        }
    }

    /// The rules that look across lines: PEM blocks and SNMP community string lists.
    pub(crate) fn scrub_multiline<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let text = self.scrub_pem(text);
        if !text.contains("community_strings") {
            return text;
        }
        let replaced = match self
            .community_strings
            .replace_all(&text, |c: &Captures<'_>| {
                format!("{} \"{REPLACEMENT}\"", g(c, 1))
            }) {
            Cow::Owned(replaced) => replaced,
            Cow::Borrowed(_) => return text,
        };
        Cow::Owned(replaced)
    }
}

/// Splits text into `(line, line break)` pairs; the break is `\n`, `\r\n` or empty (last line).
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_inclusive('\n').map(|piece| {
        let content = piece.strip_suffix('\n').unwrap_or(piece);
        let content = content.strip_suffix('\r').unwrap_or(content);
        (content, &piece[content.len()..])
    })
}

/// A capture group's text, empty when the group did not take part.
fn g<'h>(caps: &Captures<'h>, index: usize) -> &'h str {
    caps.get(index).map_or("", |m| m.as_str())
}

fn stars(count: usize) -> String {
    "*".repeat(count)
}

/// The replacement of the agent's YAML-key rules: `<key>: "********"`, unless the value is an
/// `ENC[…]` secret handle, which is not secret and stays.
fn yaml_value(caps: &Captures<'_>) -> String {
    if is_enc(unquote(g(caps, 2))) {
        g(caps, 0).to_owned()
    } else {
        format!("{} \"{REPLACEMENT}\"", g(caps, 1))
    }
}

#[derive(Clone, Copy)]
enum KeyKind {
    Api,
    App,
    Other,
}

/// The replacement of our named-value rules: the value (group 3) is masked; API and application
/// keys of their usual length keep their last five characters. A plain `key: value` gets quotes,
/// so YAML stays valid.
fn named_value(caps: &Captures<'_>, kind: KeyKind) -> String {
    let (head, quote, value) = (g(caps, 1), g(caps, 2), g(caps, 3));
    if value.starts_with("ENC[") {
        return g(caps, 0).to_owned();
    }
    let masked = match kind {
        KeyKind::Api => mask_key_of_len(value, 32, API_KEY_STARS),
        KeyKind::App => mask_key_of_len(value, 40, APP_KEY_STARS),
        KeyKind::Other => REPLACEMENT.to_owned(),
    };
    if quote.is_empty() && head.trim_end().ends_with(':') {
        format!("{head}\"{masked}\"")
    } else {
        format!("{head}{quote}{masked}")
    }
}

/// `value` masked but for its last five characters when it has `len` characters and those five
/// are ASCII alphanumerics (anything else could break the quoting around it); else `********`.
pub(crate) fn mask_key_of_len(value: &str, len: usize, star_count: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() != len {
        return REPLACEMENT.to_owned();
    }
    let tail = &chars[len - VISIBLE_KEY_CHARS..];
    if !tail.iter().all(char::is_ascii_alphanumeric) {
        return REPLACEMENT.to_owned();
    }
    let mut out = stars(star_count);
    out.extend(tail);
    out
}

/// Strips blanks and one pair of quotes around a value.
fn unquote(value: &str) -> &str {
    let value = value.trim_matches([' ', '\t']);
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// Whether a value is an `ENC[…]` secret handle (the agent's `IsEnc`: blanks trimmed, starts
/// with `ENC[` and ends with `]`).
pub(crate) fn is_enc(value: &str) -> bool {
    let value = value.trim_matches([' ', '\t']);
    value.starts_with("ENC[") && value.ends_with(']')
}

/// Whether `text` holds at least `min` hexadecimal digits in a row.
fn has_hex_run(text: &str, min: usize) -> bool {
    let mut run = 0;
    for b in text.bytes() {
        if b.is_ascii_hexdigit() {
            run += 1;
            if run >= min {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> String {
        rules().scrub_line(text).into_owned()
    }

    #[test]
    fn every_builtin_pattern_compiles() {
        let rules = rules();
        assert_eq!(rules.line.len(), 23);
    }

    #[test]
    fn api_keys_keep_their_last_five_characters_as_the_agent_shows_them() {
        assert_eq!(
            line("api_key: aaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb"),
            r#"api_key: "***************************abbbb""#
        );
        assert_eq!(
            line("api_key: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb'"),
            "api_key: '***************************abbbb'"
        );
        assert_eq!(
            line("http://dog.tld/api_key=InvalidLength12345abbbb"),
            "http://dog.tld/api_key=***************************abbbb"
        );
        assert_eq!(
            line(
                "https://agent-http-intake.logs.datadoghq.com/v1/input/aaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb"
            ),
            "https://agent-http-intake.logs.datadoghq.com/v1/input/***************************abbbb"
        );
    }

    #[test]
    fn app_keys_keep_their_last_five_characters() {
        assert_eq!(
            line("app_key: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb"),
            r#"app_key: "***********************************abbbb""#
        );
        assert_eq!(
            line("http://dog.tld/application_key=InvalidLength12345abbbb"),
            "http://dog.tld/application_key=***********************************abbbb"
        );
    }

    #[test]
    fn container_ids_are_not_mistaken_for_keys() {
        let id =
            r#"container_id: "b32bd6f9b73ba7ccb64953a04b82b48e29dfafab65fd57ca01d3b94a0e024885""#;
        assert_eq!(line(id), id);
    }

    #[test]
    fn urls_lose_their_password_but_keep_the_user() {
        for (input, expected) in [
            (
                "random_url_key: http://user:p@ssw0r)@host:port",
                "random_url_key: http://user:********@host:port",
            ),
            (
                "random_url_key: 'mongodb+srv://user:pass-with-hyphen@abc.example.com/database'",
                "random_url_key: 'mongodb+srv://user:********@abc.example.com/database'",
            ),
            (
                "random_domain_key: 'user:password@host:port'",
                "random_domain_key: 'user:********@host:port'",
            ),
            (
                "https://user:ENC[url_pass]@host",
                "https://user:ENC[url_pass]@host",
            ),
        ] {
            assert_eq!(line(input), expected, "{input}");
        }
    }

    #[test]
    fn passwords_tokens_and_snmp_credentials_are_replaced_by_key_name() {
        for (input, expected) in [
            ("mysql_password: p@ssw0r)", r#"mysql_password: "********""#),
            (
                "   mysql_password:   'password'   ",
                r#"   mysql_password: "********""#,
            ),
            ("pwd: 'password'", r#"pwd: "********""#),
            ("password=apassword", "password=********"),
            (r#"{"password": "hunter2"}"#, r#"{"password": "********"}"#),
            ("auth_token: plain_token_value", r#"auth_token: "********""#),
            (
                "auth_token_file_path: /foo/bar/baz",
                "auth_token_file_path: /foo/bar/baz",
            ),
            (
                "community_string: 'password'",
                r#"community_string: "********""#,
            ),
            ("privkey: password", r#"privkey: "********""#),
            ("client_secret: abc", r#"client_secret: "********""#),
            (
                "secret_backend_command: /bin/helper",
                "secret_backend_command: /bin/helper",
            ),
            ("aws_access_key: AKIAXYZ", r#"aws_access_key: "********""#),
            ("X-Api-Key: abcdef", r#"X-Api-Key: "********""#),
        ] {
            assert_eq!(line(input), expected, "{input}");
        }
    }

    #[test]
    fn enc_handles_stay_because_they_are_not_secret() {
        for input in [
            "password: ENC[db_password]",
            "password:   ENC[key]  ",
            "auth_token: ENC[yaml_token]",
            "api_key: ENC[mixed_api_key]",
            "password=ENC[secret]",
            r#""access_token": "ENC[token]""#,
        ] {
            assert_eq!(line(input), input);
        }
        assert_eq!(line("password: ENC[incomplete"), r#"password: "********""#);
    }

    #[test]
    fn bearer_tokens_follow_the_agent_formats() {
        assert_eq!(
            line("Bearer 2fe663014abcd1850076f6d68c0355666db98758262870811cace007cd4a62ba"),
            "Bearer ***********************************************************a62ba"
        );
        assert_eq!(
            line("sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig (retrying)"),
            "sent Bearer ********)"
        );
        let not_bearer =
            "AuthBearer 2fe663014abcd1850076f6d68c0355666db98758262870811cace007cd4a62ba";
        assert_eq!(line(not_bearer), not_bearer);
    }

    #[test]
    fn named_keys_of_any_shape_are_masked_outside_yaml_too() {
        assert_eq!(line("DD_API_KEY=abc.def"), "DD_API_KEY=********");
        assert_eq!(
            line(r#"{"dd-api-key": "short"}"#),
            r#"{"dd-api-key": "********"}"#
        );
        assert_eq!(
            line("https://x.example/cb?access_token=eyJ0eXAi.abc&state=1"),
            "https://x.example/cb?access_token=********&state=1"
        );
        assert_eq!(line("api_key: |"), "api_key: |");
    }

    #[test]
    fn pem_blocks_are_replaced_whole() {
        let text = "cert: |\n  -----BEGIN RSA PRIVATE KEY-----\n  Proc-Type: 4,ENCRYPTED\n  DEK-Info: AES-128-CBC,0A1B\n\n  MIIBOgIBAAJBAKj34GkxFhD9\n  -----END RSA PRIVATE KEY-----\nnext: 1\n";
        assert_eq!(rules().scrub_pem(text), "cert: |\n  ********\nnext: 1\n");
        let cut = "key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n2024-05-02 10:15:01 UTC | CORE | INFO | next";
        assert_eq!(
            rules().scrub_pem(cut),
            "key ********\n2024-05-02 10:15:01 UTC | CORE | INFO | next"
        );
    }

    #[test]
    fn community_string_lists_are_replaced_whole() {
        let text = "snmp:\n  community_strings:\n  - 'password1'\n  - 'password2'\nother: [abc]\n";
        assert_eq!(
            rules().scrub_multiline(text),
            "snmp:\n  community_strings: \"********\"\nother: [abc]\n"
        );
        let flow = "community_strings: [\n 'a',\n 'b']\nother: 1";
        assert_eq!(
            rules().scrub_multiline(flow),
            "community_strings: \"********\"\nother: 1"
        );
    }

    #[test]
    fn mask_key_of_len_hides_other_lengths_entirely() {
        assert_eq!(mask_key_of_len("abc", 32, API_KEY_STARS), REPLACEMENT);
        assert_eq!(
            mask_key_of_len("0123456789abcdef0123456789abcdef", 32, API_KEY_STARS),
            "***************************bcdef"
        );
        assert_eq!(
            mask_key_of_len("0123456789abcdef0123456789abcde\"", 32, API_KEY_STARS),
            REPLACEMENT
        );
    }
}
