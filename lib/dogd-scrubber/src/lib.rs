//! Removes credentials from text before it leaves the process: config dumps, flare archives, log
//! files copied into flares, logged configuration. One [`Scrubber`] is meant to be shared by all of
//! them, so a secret learnt once (see [`Scrubber::add_known_secrets`]) is hidden everywhere.
//!
//! The rules and their replacement formats are those of the Datadog Agent's scrubber
//! (`pkg/util/scrubber/default.go`, the 7.70–7.77 rule set), so a flare made by dogd reads like
//! one made by the agent:
//!
//! | what | becomes |
//! | --- | --- |
//! | a 32-hex API key anywhere; any value of `api_key=` | `***************************abcde` (27 `*` + last 5) |
//! | a 40-hex application key anywhere; any value of `app_key=`, `application_key=` | 35 `*` + last 5 |
//! | such a key right after a YAML indicator (`api_key: <hex>`, `- <hex>`, `[<hex>`) | the same, in double quotes |
//! | `Bearer <64 hex>` | `Bearer ` + 59 `*` + last 5 |
//! | `Bearer <anything else>` | `Bearer ********` (the rest of the line, up to its last word) |
//! | `scheme://user:password@host`, `user:password@host` | `scheme://user:********@host` |
//! | `key: value` where the key holds `pass`/`pwd`, ends in `token`, `jwt`, `_secret`, `access_key`, `private_key`, is an `X-…-Key`/`-Token`/`-Auth`/`-Secret` header, `Authorization`, `Cookie`, an SNMP credential, … | `key: "********"` (the rest of the line) |
//! | `password=…`, `"password": "…"`, `--db_pwd=…` | `password=********`, `"password": "********"` |
//! | `DDRCM_…` remote-configuration keys | 35 `*` + last 5 |
//! | PEM blocks (`-----BEGIN …-----` … `-----END …-----`), private keys cut before their end | `********` |
//! | `community_strings:` lists | `community_strings: "********"` |
//! | ours: `api_key`, `app_key`, token and secret values by key name in JSON, `key=value` and query strings | `********` (API/app keys of their usual length: last 5) |
//! | values given to [`Scrubber::add_known_secrets`] | `********` |
//!
//! `ENC[handle]` values are kept: a handle names a secret in the secrets backend, it is not one
//! (the agent keeps them in config dumps and flares too).
//!
//! [`Scrubber::scrub_yaml`] also works like the agent's YAML scrubber: the value of every
//! sensitive key is replaced whatever its form (block scalar, list, mapping, flow collection),
//! and comment lines are dropped.
//!
//! Like the agent's, the rules prefer hiding too much to too little: `bypass_cache: true` loses
//! its value (the key holds `pass`), `Authorization: Bearer …` becomes `Authorization: "********"`.

#![warn(missing_docs)]

mod rules;
mod yaml;

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock};

/// What a hidden value becomes (the agent's `defaultReplacement`).
pub const REPLACEMENT: &str = "********";

/// Known secret values shorter than this (in characters, blanks trimmed) are not recorded:
/// replacing every `abc` in a log would hide far more than secrets.
pub const MIN_KNOWN_SECRET_LEN: usize = 4;

/// First code point of the private-use range standing for undecodable bytes in
/// [`Scrubber::scrub_bytes`] (byte `b` is `U+10FE00 + b`).
const RAW_BYTE_BASE: u32 = 0x10_FE00;

/// Removes credentials from text: the agent's rules plus the secret values it is told about.
///
/// Clones share their known secrets: a value added through one clone is hidden by all of them.
/// The rules are compiled once per process, on first use.
#[derive(Clone, Default)]
pub struct Scrubber {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Longest first, so a secret that contains another one is replaced whole.
    known_secrets: RwLock<Vec<KnownSecret>>,
}

#[derive(PartialEq, Eq)]
struct KnownSecret {
    value: String,
    /// `********`, or for a value shaped like an API or application key (32 or 40 hex digits),
    /// the same last-five form the key rules give it.
    replacement: String,
}

impl KnownSecret {
    fn new(value: String) -> Self {
        let len = value.len();
        let key_shaped = (len == 32 || len == 40) && value.bytes().all(|b| b.is_ascii_hexdigit());
        let replacement = if key_shaped {
            mask_key(&value)
        } else {
            REPLACEMENT.to_owned()
        };
        KnownSecret { value, replacement }
    }
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("known_secrets", &self.known_secret_count())
            .finish()
    }
}

impl Scrubber {
    /// A scrubber with the agent's default rules and no known secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records values known to be secret (resolved `ENC[]` secrets, the IPC auth token, …): every
    /// later scrub replaces each of their occurrences, anywhere, with `********` (a value of 32 or
    /// 40 hex digits, shaped like an API or application key, is shown as the key rules show keys:
    /// `*`s and its last five characters).
    ///
    /// Values are trimmed of surrounding blanks; values then shorter than
    /// [`MIN_KNOWN_SECRET_LEN`] characters, and values made only of `*`, are ignored.
    /// Safe to call from any thread, at any time.
    pub fn add_known_secrets<I: IntoIterator<Item = String>>(&self, values: I) {
        let mut new: Vec<KnownSecret> = values
            .into_iter()
            .filter_map(|value| {
                let trimmed = value.trim();
                let useful = trimmed.chars().count() >= MIN_KNOWN_SECRET_LEN
                    && !trimmed.chars().all(|c| c == '*');
                useful.then(|| KnownSecret::new(trimmed.to_owned()))
            })
            .collect();
        if new.is_empty() {
            return;
        }
        let mut known = self
            .inner
            .known_secrets
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        known.append(&mut new);
        known.sort_by(|a, b| {
            (b.value.len().cmp(&a.value.len())).then_with(|| a.value.cmp(&b.value))
        });
        known.dedup();
    }

    /// How many known secret values are recorded.
    pub fn known_secret_count(&self) -> usize {
        self.inner
            .known_secrets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Scrubs line-oriented text (logs, status output, environment dumps, JSON).
    ///
    /// Line breaks, comments and everything that is not a credential come back exactly as they
    /// were: text without secrets is returned unchanged.
    pub fn scrub_str(&self, text: &str) -> String {
        let rules = rules::rules();
        let text = self.hide_known_secrets(text);
        let text = rules.scrub_multiline(&text);
        let scrubbed = rules.scrub_lines(&text);
        self.hide_known_secrets(&scrubbed).into_owned()
    }

    /// Scrubs bytes that may not be UTF-8 (a log file, a command's output).
    ///
    /// Bytes that are not UTF-8 are kept as they are and take part in matching as punctuation
    /// would, so a credential next to them is still found; nothing else is lost or replaced.
    /// (One exception: this uses the private-use characters U+10FE00..=U+10FEFF internally, so
    /// in input that is not valid UTF-8, those characters come back as U+FFFD.)
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.scrub_str(text).into_bytes(),
            Err(_) => text_as_raw_bytes(&self.scrub_str(&raw_bytes_as_text(bytes))),
        }
    }

    /// Scrubs YAML configuration text (`datadog.yaml`, `conf.d` files, config dumps).
    ///
    /// On top of what [`scrub_str`](Self::scrub_str) does, the value of every sensitive key
    /// (the agent's list: passwords, tokens, secrets, API/application keys, SNMP credentials,
    /// `Authorization`, HTTP `X-…-Key` headers, …; case-insensitive) is replaced whatever its
    /// form, quoted, plain, block scalar, list or mapping: `key: "********"`, or for `api_key`
    /// and `app_key` of their usual length, the last five characters. `ENC[…]` handles stay.
    /// Comment lines are dropped, as the agent does: commented-out credentials are common and
    /// free text cannot be scrubbed reliably. The rest keeps its layout, key order and quoting.
    pub fn scrub_yaml(&self, yaml: &str) -> String {
        let rules = rules::rules();
        let text = self.hide_known_secrets(yaml);
        let text = rules.scrub_pem(&text);
        let scrubbed = yaml::scrub(&text, rules);
        self.hide_known_secrets(&scrubbed).into_owned()
    }

    /// Replaces known secret values. Done before the rules, so that what follows a replaced
    /// value is judged as it will be shown (a key glued to a secret becomes a word of its own),
    /// and once more after them, so no known value can be pieced together by a replacement.
    fn hide_known_secrets<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let known = self
            .inner
            .known_secrets
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut text = Cow::Borrowed(text);
        for secret in known.iter() {
            if text.contains(secret.value.as_str()) {
                text = Cow::Owned(text.replace(secret.value.as_str(), &secret.replacement));
            }
        }
        text
    }
}

/// Shows an API or application key the way the agent does (`HideKeyExceptLastFiveChars`): a
/// 32- or 40-character key keeps its last five characters behind `*`s, anything else is
/// `********`.
pub fn mask_key(key: &str) -> String {
    match key.chars().count() {
        40 => rules::mask_key_of_len(key, 40, rules::APP_KEY_STARS),
        _ => rules::mask_key_of_len(key, 32, rules::API_KEY_STARS),
    }
}

/// Maps bytes to text, each undecodable byte to one private-use character (and characters of
/// that range already there to U+FFFD, so the mapping can be undone).
fn raw_bytes_as_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + bytes.len() / 2);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            text.push(if is_raw_byte_char(c) {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            });
        }
        for &b in chunk.invalid() {
            text.push(
                char::from_u32(RAW_BYTE_BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER),
            );
        }
    }
    text
}

fn text_as_raw_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if is_raw_byte_char(c) {
            // In range by construction: the difference is at most 0xFF.
            out.push(u8::try_from(u32::from(c) - RAW_BYTE_BASE).unwrap_or(b'?'));
        } else {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

fn is_raw_byte_char(c: char) -> bool {
    (RAW_BYTE_BASE..=RAW_BYTE_BASE + 0xFF).contains(&u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_blank_known_secrets_are_ignored() {
        let scrubber = Scrubber::new();
        scrubber.add_known_secrets(["abc".to_owned(), "   ".to_owned(), "****".to_owned()]);
        assert_eq!(scrubber.known_secret_count(), 0);
        assert_eq!(scrubber.scrub_str("abc abc"), "abc abc");
    }

    #[test]
    fn a_secret_containing_another_is_replaced_whole() {
        let scrubber = Scrubber::new();
        scrubber.add_known_secrets(["hunter".to_owned(), "hunter22-long".to_owned()]);
        assert_eq!(scrubber.scrub_str("x hunter22-long y"), "x ******** y");
        assert_eq!(scrubber.known_secret_count(), 2);
    }

    #[test]
    fn clones_share_known_secrets() {
        let scrubber = Scrubber::new();
        let clone = scrubber.clone();
        clone.add_known_secrets(["s3cr3t-value".to_owned()]);
        assert_eq!(scrubber.scrub_str("s3cr3t-value"), REPLACEMENT);
        assert_eq!(format!("{scrubber:?}"), "Scrubber { known_secrets: 1 }");
    }

    #[test]
    fn mask_key_follows_the_agent_lengths() {
        assert_eq!(
            mask_key("0123456789abcdef0123456789abcdef"),
            "***************************bcdef"
        );
        assert_eq!(
            mask_key("0123456789abcdef0123456789abcdef01234567"),
            "***********************************34567"
        );
        assert_eq!(mask_key("short"), REPLACEMENT);
    }

    #[test]
    fn raw_bytes_survive_the_round_trip() {
        let bytes = b"a\xffb\xc3(\x80";
        assert_eq!(text_as_raw_bytes(&raw_bytes_as_text(bytes)), bytes);
    }
}
