//! The YAML pass: replaces the value of sensitive keys whatever its form, like the agent's YAML
//! scrubber (`yaml_scrubber.go`) does on the parsed document, but on the text, so the layout,
//! key order and quoting of everything else stay as written.
//!
//! Keys are matched case-insensitively against the agent's list (`default.go`, the replacers with
//! a `YAMLKeyRegex`, first match wins). Lines are otherwise run through the text rules.

use crate::rules::{self, REPLACEMENT, Rules, is_enc, mask_key_of_len};

/// How a sensitive key's value is hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `********`.
    Whole,
    /// A 32-character value keeps its last five characters (the agent's `apiKeyYaml`).
    ApiKey,
    /// A 40-character value keeps its last five characters (the agent's `appKeyYaml`).
    AppKey,
}

/// Keys whose value is hidden when the key is exactly one of them (lower case).
const EXACT_KEYS: &[&str] = &[
    // exactKeyReplacer
    "auth-tenantid",
    "authority",
    "cainzapp-api-key",
    "cms-svc-api-key",
    "lodauth",
    "sec-websocket-key",
    "statuskey",
    "cookie",
    "private-token",
    "kong-admin-token",
    "accesstoken",
    "session_token",
    // consumerKeyAndTokenIDReplacer
    "consumer_key",
    "token_id",
    // snmpReplacer
    "community_string",
    "authkey",
    "auth_key",
    "privkey",
    "priv_key",
    "community",
    "authentication_key",
    "privacy_key",
    "authorization",
];

/// Which sensitive kind a (lower-case) key is, if any.
fn classify(key: &str) -> Option<Kind> {
    let header = key.starts_with("x-")
        && ["key", "token", "auth", "secret"]
            .iter()
            .any(|end| key.ends_with(end));
    let secret = {
        let base = key.strip_suffix("_id").unwrap_or(key);
        base == "secret" || base.ends_with("_secret") || base.ends_with("-secret")
    };
    let whole = header
        || EXACT_KEYS.contains(&key)
        || key.ends_with("private_key")
        || key.contains("pass")
        || key.contains("pwd")
        || key.contains("pswd")
        || key.ends_with("token")
        || key.ends_with("jwt")
        || secret
        || key.ends_with("access_key");
    if whole {
        return Some(Kind::Whole);
    }
    if ["api_key", "apikey", "api-key"]
        .iter()
        .any(|k| key.contains(k))
    {
        return Some(Kind::ApiKey);
    }
    let app = ["app", "application"].iter().any(|stem| {
        ["_key", "key", "-key"]
            .iter()
            .any(|end| key.contains(&format!("{stem}{end}")))
    });
    if app {
        return Some(Kind::AppKey);
    }
    key.contains("community_strings").then_some(Kind::Whole)
}

/// One line of the input: its text without the line break, and the break.
#[derive(Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    end: &'a str,
}

/// A `key: value` line.
struct KeyLine {
    /// Byte column where the key starts (after indentation and `- ` markers).
    column: usize,
    /// The key, unquoted, lower-cased.
    key: String,
    /// Byte offset just past the `:`.
    colon_end: usize,
}

/// Scrubs YAML text (PEM blocks already removed).
pub(crate) fn scrub(text: &str, rules: &Rules) -> String {
    let lines: Vec<Line<'_>> = rules::lines(text)
        .map(|(text, end)| Line { text, end })
        .collect();
    let mut out = String::with_capacity(text.len());
    // Inside a block scalar (`key: |`) of a key that is not sensitive: the column of its key.
    let mut block_scalar_of: Option<usize> = None;
    let mut i = 0;
    while let Some(line) = lines.get(i).copied() {
        if let Some(column) = block_scalar_of {
            if is_blank(line.text) || indent(line.text) > column {
                push_scrubbed(&mut out, rules, line);
                i += 1;
                continue;
            }
            block_scalar_of = None;
        }
        if is_blank(line.text) {
            out.push_str(line.text);
            out.push_str(line.end);
            i += 1;
            continue;
        }
        if line.text.trim_start().starts_with('#') {
            i += 1;
            continue;
        }
        let Some(key_line) = parse_key_line(line.text) else {
            push_value_line(&mut out, rules, line);
            block_scalar_of = sequence_block_scalar(line.text);
            i += 1;
            continue;
        };
        if let Some(kind) = classify(&key_line.key) {
            i = scrub_sensitive(&mut out, rules, &lines, i, &key_line, kind);
            continue;
        }
        push_value_line(&mut out, rules, line);
        let value = strip_properties(line.text[key_line.colon_end..].trim_start());
        if value.starts_with(['|', '>']) {
            block_scalar_of = Some(key_line.column);
        }
        i += 1;
    }
    out
}

/// Pushes a line that is not a sensitive key's, scrubbed; a value the scrubbing left as a bare
/// mask (a known secret that was a whole plain value) is quoted, as `*` would start an alias.
fn push_value_line(out: &mut String, rules: &Rules, line: Line<'_>) {
    if let Some(flow) = scrub_flow_line(line.text, rules) {
        out.push_str(&flow);
        out.push_str(line.end);
        return;
    }
    let scrubbed = rules.scrub_line(line.text);
    if scrubbed != line.text {
        // The rules may have changed what the line reads as (a `#` that made the rest a
        // comment can go with a replaced value): a sensitive key it now shows is handled too,
        // so that scrubbing the output again finds nothing more to do.
        if let Some(key_line) = parse_key_line(&scrubbed)
            && let Some(kind) = classify(&key_line.key)
        {
            let single = [Line {
                text: &scrubbed,
                end: line.end,
            }];
            scrub_sensitive(out, rules, &single, 0, &key_line, kind);
            return;
        }
    }
    let value_start = match parse_key_line(&scrubbed) {
        Some(key_line) => key_line.colon_end,
        None => {
            let column = indent(&scrubbed);
            if !scrubbed[column..].starts_with("- ") {
                out.push_str(&scrubbed);
                out.push_str(line.end);
                return;
            }
            column + 1
        }
    };
    let (head, value) = scrubbed.split_at(value_start);
    let bare = value.trim();
    if is_bare_mask(bare) {
        let blanks = &value[..value.len() - value.trim_start().len()];
        out.push_str(head);
        out.push_str(blanks);
        out.push('"');
        out.push_str(bare);
        out.push('"');
    } else {
        out.push_str(&scrubbed);
    }
    out.push_str(line.end);
}

/// A line whose value is a flow collection that closes on the same line (`key: {a: b, c: [d]}`,
/// `- [a, b]`, a one-line JSON object), with the values of sensitive keys inside replaced and
/// the other values run through the text rules one by one; `None` for any other line.
fn scrub_flow_line(text: &str, rules: &Rules) -> Option<String> {
    let start = match parse_key_line(text) {
        Some(key_line) => key_line.colon_end,
        None => {
            let mut column = indent(text);
            while text[column..].starts_with("- ") || text[column..].starts_with("-\t") {
                column += 1;
                column += indent(&text[column..]);
            }
            column
        }
    };
    let value_start = start + indent(&text[start..]);
    if !text[value_start..].starts_with(['{', '[']) {
        return None;
    }
    let mut scan = FlowScan {
        text,
        rules,
        edits: Vec::new(),
    };
    let end = scan.collection(value_start)?;
    let rest = &text[end..];
    let rest_trimmed = rest.trim_start_matches([' ', '\t']);
    if !(rest_trimmed.is_empty() || rest_trimmed.starts_with('#')) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (from, to, replacement) in &scan.edits {
        out.push_str(&text[at..*from]);
        out.push_str(replacement);
        at = *to;
    }
    out.push_str(&text[at..end]);
    out.push_str(rest);
    Some(out)
}

/// A one-line flow collection being scanned: the edits to make, in order.
struct FlowScan<'a> {
    text: &'a str,
    rules: &'a Rules,
    edits: Vec<(usize, usize, String)>,
}

impl FlowScan<'_> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    fn skip_blanks(&self, mut at: usize) -> usize {
        while matches!(self.byte(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        at
    }

    /// Scans the collection opening at `at`; returns the offset after its closing bracket.
    fn collection(&mut self, at: usize) -> Option<usize> {
        let mapping = self.byte(at)? == b'{';
        let close = if mapping { b'}' } else { b']' };
        let mut at = self.skip_blanks(at + 1);
        if self.byte(at)? == close {
            return Some(at + 1);
        }
        loop {
            at = if mapping {
                self.entry(at, close)?
            } else {
                self.node(at, close, None)?
            };
            at = self.skip_blanks(at);
            match self.byte(at)? {
                b',' => at = self.skip_blanks(at + 1),
                b if b == close => return Some(at + 1),
                _ => return None,
            }
            if self.byte(at)? == close {
                return Some(at + 1);
            }
        }
    }

    /// Scans `key: value` (or a lone key) in a mapping; returns the offset after it.
    fn entry(&mut self, at: usize, close: u8) -> Option<usize> {
        let key_end = self.scalar_end(at, close, true)?;
        let key = unquote_scalar(&self.text[at..key_end]).to_ascii_lowercase();
        let after_key = self.skip_blanks(key_end);
        if self.byte(after_key) != Some(b':') {
            return Some(key_end);
        }
        let value_at = self.skip_blanks(after_key + 1);
        self.node(value_at, close, classify(&key))
    }

    /// Scans a value; the value of a sensitive key (`kind`) is replaced whole.
    fn node(&mut self, at: usize, close: u8, kind: Option<Kind>) -> Option<usize> {
        if matches!(self.byte(at)?, b'{' | b'[') {
            let end = self.collection(at)?;
            if kind.is_some() {
                self.edits.retain(|(from, _, _)| *from < at);
                self.edits.push((at, end, format!("\"{REPLACEMENT}\"")));
            }
            return Some(end);
        }
        let end = self.scalar_end(at, close, false)?;
        let raw = &self.text[at..end];
        let quote = raw.chars().next().filter(|c| matches!(c, '"' | '\''));
        let value = unquote_scalar(raw);
        if let Some(kind) = kind {
            if !value.trim().is_empty() && !is_enc(value) {
                let quote = quote.unwrap_or('"');
                let masked = mask(kind, value.trim());
                self.edits
                    .push((at, end, format!("{quote}{masked}{quote}")));
            }
            return Some(end);
        }
        // The text rules see the content without its quotes, so a rule that takes the rest of
        // the line cannot take the closing quote too.
        let scrubbed = self.rules.scrub_line(value);
        if scrubbed != value {
            let replacement = match quote {
                Some(q) if scrubbed.contains(q) || scrubbed.contains('\\') => {
                    format!("{q}{REPLACEMENT}{q}")
                }
                Some(q) => format!("{q}{scrubbed}{q}"),
                None if scrubbed.starts_with('*') => format!("\"{scrubbed}\""),
                None => scrubbed.into_owned(),
            };
            self.edits.push((at, end, replacement));
        }
        Some(end)
    }

    /// Where the scalar starting at `at` ends: after its closing quote, or (plain) before the
    /// `,` or closing bracket that follows it, or (a key) before `: `.
    fn scalar_end(&self, at: usize, close: u8, key: bool) -> Option<usize> {
        let first = self.byte(at)?;
        if first == b'"' || first == b'\'' {
            let mut i = at + 1;
            loop {
                let b = self.byte(i)?;
                if first == b'"' && b == b'\\' {
                    i += 2;
                    continue;
                }
                if b == first {
                    if first == b'\'' && self.byte(i + 1) == Some(b'\'') {
                        i += 2;
                        continue;
                    }
                    return Some(i + 1);
                }
                i += 1;
            }
        }
        let mut i = at;
        let mut end = at;
        while let Some(b) = self.byte(i) {
            let next = self.byte(i + 1);
            let separator = b == b','
                || b == close
                || matches!(b, b'{' | b'[' | b'}' | b']')
                || (key && b == b':' && matches!(next, None | Some(b' ' | b'\t' | b',')))
                || (key && b == b':' && next == Some(close));
            if separator {
                break;
            }
            i += 1;
            if b != b' ' && b != b'\t' {
                end = i;
            }
        }
        (end > at || key).then_some(end)
    }
}

/// The content of a flow scalar without its quotes (escapes left as written).
fn unquote_scalar(raw: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = raw
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    raw
}

/// `********`, or `*`s and the last characters of a key.
fn is_bare_mask(value: &str) -> bool {
    let tail = value.trim_start_matches('*');
    value.len() - tail.len() >= REPLACEMENT.len()
        && tail.len() <= rules::VISIBLE_KEY_CHARS
        && tail.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn push_scrubbed(out: &mut String, rules: &Rules, line: Line<'_>) {
    out.push_str(&rules.scrub_line(line.text));
    out.push_str(line.end);
}

/// Writes the scrubbed form of the sensitive key on line `i` and returns the index of the first
/// line after its value.
fn scrub_sensitive(
    out: &mut String,
    rules: &Rules,
    lines: &[Line<'_>],
    i: usize,
    key_line: &KeyLine,
    kind: Kind,
) -> usize {
    let line = lines[i];
    let prefix = &line.text[..key_line.colon_end];
    let value = strip_properties(line.text[key_line.colon_end..].trim_start());
    let replace = |out: &mut String, masked: &str, quote: char, last: usize| {
        out.push_str(prefix);
        out.push(' ');
        out.push(quote);
        out.push_str(masked);
        out.push(quote);
        out.push_str(lines[last].end);
        last + 1
    };
    let keep = |out: &mut String, last: usize| {
        for &kept in &lines[i..=last] {
            push_scrubbed(out, rules, kept);
        }
        last + 1
    };

    // No value on the line: a nested mapping or list, or null.
    if value.is_empty() || value.starts_with('#') {
        let end = block_end(lines, i + 1, key_line.column, true);
        if end == i + 1 {
            // Null: nothing to hide but a comment, which goes.
            out.push_str(prefix);
            out.push_str(line.end);
            return i + 1;
        }
        return replace(out, REPLACEMENT, '"', end - 1);
    }
    // Block scalar: `|` or `>` with its more-indented lines.
    if let Some(folded) = value
        .strip_prefix(['|', '>'])
        .map(|_| value.starts_with('>'))
    {
        let end = block_end(lines, i + 1, key_line.column, false);
        let body: Vec<&str> = lines[i + 1..end].iter().map(|l| l.text.trim()).collect();
        let joined = body.join(if folded { " " } else { "\n" });
        let content = joined.trim();
        if content.is_empty() || is_enc(content) {
            return keep(out, end.max(i + 1) - 1);
        }
        return replace(out, &mask(kind, content), '"', end.max(i + 1) - 1);
    }
    // Flow collection: hidden whole, however many lines it takes.
    if value.starts_with(['[', '{']) {
        let last = flow_end(lines, i, value).unwrap_or(i);
        return replace(out, REPLACEMENT, '"', last);
    }
    // Quoted scalar, possibly over several lines.
    if let Some(quote) = value.chars().next().filter(|c| matches!(c, '"' | '\'')) {
        let Some((content, last)) = quoted_end(lines, i, value, quote) else {
            return replace(out, REPLACEMENT, '"', i);
        };
        if is_enc(&content) {
            return keep(out, last);
        }
        let content = content.trim();
        if content.is_empty() {
            return keep(out, last);
        }
        return replace(out, &mask(kind, content), quote, last);
    }
    // Plain scalar, with its continuation lines (more indented, not blank).
    let first = match value.find(" #").or_else(|| value.find("\t#")) {
        Some(comment) => value[..comment].trim_end(),
        None => value.trim_end(),
    };
    let mut last = i;
    let mut parts = vec![first];
    while let Some(next) = lines.get(last + 1) {
        if is_blank(next.text) || indent(next.text) <= key_line.column {
            break;
        }
        parts.push(next.text.trim());
        last += 1;
    }
    let content = parts.join(" ");
    if last == i && is_enc(&content) {
        return keep(out, last);
    }
    replace(out, &mask(kind, &content), '"', last)
}

fn mask(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Whole => REPLACEMENT.to_owned(),
        Kind::ApiKey => mask_key_of_len(value, 32, rules::API_KEY_STARS),
        Kind::AppKey => mask_key_of_len(value, 40, rules::APP_KEY_STARS),
    }
}

/// Index of the first line from `start` that is not part of the block under a key at `column`:
/// more-indented lines, blank lines between them, and (for a key's nested value) `- ` items at
/// the key's own column. Trailing blank lines are not part of the block.
fn block_end(lines: &[Line<'_>], start: usize, column: usize, same_column_items: bool) -> usize {
    let mut end = start;
    let mut j = start;
    while let Some(line) = lines.get(j) {
        j += 1;
        if is_blank(line.text) {
            continue;
        }
        let ind = indent(line.text);
        let rest = &line.text[ind..];
        let item = rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t");
        if ind > column || (same_column_items && ind == column && item) {
            end = j;
        } else {
            break;
        }
    }
    end
}

/// Index of the line where the flow collection starting at `value` (on line `i`) closes.
fn flow_end(lines: &[Line<'_>], i: usize, value: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (offset, line) in lines.get(i..)?.iter().enumerate() {
        let text = if offset == 0 { value } else { line.text };
        for c in text.chars() {
            match quote {
                Some('"') if escaped => escaped = false,
                Some('"') if c == '\\' => escaped = true,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '[' | '{' => depth += 1,
                    ']' | '}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Some(i + offset);
                        }
                    }
                    _ => {}
                },
            }
        }
    }
    None
}

/// The content of the quoted scalar starting at `value` (on line `i`) and the line where it
/// closes. Escapes are left as written: only the length matters here.
fn quoted_end(lines: &[Line<'_>], i: usize, value: &str, quote: char) -> Option<(String, usize)> {
    let mut content = String::new();
    let mut escaped = false;
    for (offset, line) in lines.get(i..)?.iter().enumerate() {
        let text = if offset == 0 {
            value.get(quote.len_utf8()..)?
        } else {
            content.push(' ');
            line.text.trim_start()
        };
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if escaped {
                escaped = false;
            } else if quote == '"' && c == '\\' {
                escaped = true;
            } else if c == quote {
                if quote == '\'' && chars.peek() == Some(&'\'') {
                    content.push(c);
                    chars.next();
                } else {
                    return Some((content, i + offset));
                }
            }
            content.push(c);
        }
    }
    None
}

/// Parses `[indent][- ]key: …`; `None` for anything else (list scalars, flow collections,
/// comments, text).
fn parse_key_line(text: &str) -> Option<KeyLine> {
    let mut column = indent(text);
    loop {
        let rest = &text[column..];
        if rest.starts_with("- ") || rest.starts_with("-\t") {
            column += 1;
            column += indent(&text[column..]);
        } else {
            break;
        }
    }
    let rest = &text[column..];
    let first = rest.chars().next()?;
    let (key, key_end) = if first == '"' || first == '\'' {
        let close = rest[1..].find(first)? + 1;
        (&rest[1..close], close + 1)
    } else {
        if "#[]{}|>&*!%@`,?-".contains(first) {
            return None;
        }
        let mut found = None;
        for (at, c) in rest.char_indices() {
            let after = &rest[at + c.len_utf8()..];
            if c == ':' && (after.is_empty() || after.starts_with([' ', '\t'])) {
                found = Some(at);
                break;
            }
            if c == '#' && rest[..at].ends_with([' ', '\t']) {
                return None;
            }
        }
        let at = found?;
        (rest[..at].trim_end(), at)
    };
    // The separator: optional blanks, then `:` followed by a blank or the end of the line.
    let after_key = &rest[key_end..];
    let colon = after_key.len() - after_key.trim_start_matches([' ', '\t']).len();
    let tail = after_key.get(colon..)?;
    let after_colon = tail.strip_prefix(':')?;
    if !(after_colon.is_empty() || after_colon.starts_with([' ', '\t'])) || key.is_empty() {
        return None;
    }
    Some(KeyLine {
        column,
        key: key.to_ascii_lowercase(),
        colon_end: column + key_end + colon + 1,
    })
}

/// For `- |` / `- >` (a block scalar as a list item), the column of the `-`.
fn sequence_block_scalar(text: &str) -> Option<usize> {
    let column = indent(text);
    let rest = text[column..].strip_prefix('-')?;
    let value = strip_properties(rest.trim_start());
    (rest.starts_with([' ', '\t']) && value.starts_with(['|', '>'])).then_some(column)
}

/// Skips node properties (`&anchor`, `!tag`) in front of a value.
fn strip_properties(mut value: &str) -> &str {
    while value.starts_with(['&', '!']) {
        let end = value.find([' ', '\t']).unwrap_or(value.len());
        value = value[end..].trim_start();
    }
    value
}

fn indent(text: &str) -> usize {
    text.len() - text.trim_start_matches([' ', '\t']).len()
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::rules;

    fn yaml(text: &str) -> String {
        scrub(text, rules())
    }

    #[test]
    fn keys_are_classified_like_the_agent_does() {
        for key in [
            "password",
            "mysql_pass",
            "pwd",
            "auth_token",
            "jwt",
            "client_secret",
            "secret",
            "aws_access_key",
            "ssh_private_key",
            "x-api-key",
            "x-vault-token",
            "cookie",
            "authorization",
            "community_strings",
            "token_id",
        ] {
            assert_eq!(classify(key), Some(Kind::Whole), "{key}");
        }
        assert_eq!(classify("api_key"), Some(Kind::ApiKey));
        assert_eq!(classify("dd-api-key"), Some(Kind::ApiKey));
        assert_eq!(classify("app_key"), Some(Kind::AppKey));
        assert_eq!(classify("application_key"), Some(Kind::AppKey));
        for key in [
            "site",
            "auth_token_file_path",
            "secret_backend_command",
            "username",
            "key",
            "tokens_limit",
            "api_endpoint",
        ] {
            assert_eq!(classify(key), None, "{key}");
        }
    }

    #[test]
    fn key_lines_are_parsed_with_list_markers_and_quotes() {
        let parsed = parse_key_line("  - password: x").expect("a key line");
        assert_eq!(
            (parsed.column, parsed.key.as_str(), parsed.colon_end),
            (4, "password", 13)
        );
        let quoted = parse_key_line(r#"  "Api_Key" : x"#).expect("a quoted key line");
        assert_eq!((quoted.key.as_str(), quoted.colon_end), ("api_key", 13));
        assert!(parse_key_line("- env:prod").is_none());
        assert!(parse_key_line("# password: x").is_none());
        assert!(parse_key_line("http://x:y@host").is_none());
    }

    #[test]
    fn block_scalars_lists_and_flow_values_of_sensitive_keys_go_whole() {
        let input = "token: |\n  some multi-line\n  token with lot\n\nsecond_token: >\n  123465749798\nmulti_token:\n  - a\n  - b\nlist_api_key: [aaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb,\n  aaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb]\napi_key2: |\n  aaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb\nafter: 1\n";
        let expected = "token: \"********\"\n\nsecond_token: \"********\"\nmulti_token: \"********\"\nlist_api_key: \"********\"\napi_key2: \"***************************abbbb\"\nafter: 1\n";
        assert_eq!(yaml(input), expected);
    }

    #[test]
    fn quoting_is_kept_and_enc_handles_stay() {
        let input = "a:\n  password: 'hunter2'\n  token: \"abc\"\n  api_key: ENC[mixed_api_key]\n  pass: \"  ENC[whitespace_key]  \"\n  invalid_password: ENC[incomplete\n";
        let expected = "a:\n  password: '********'\n  token: \"********\"\n  api_key: ENC[mixed_api_key]\n  pass: \"  ENC[whitespace_key]  \"\n  invalid_password: \"********\"\n";
        assert_eq!(yaml(input), expected);
    }

    #[test]
    fn comments_are_dropped_but_not_inside_block_scalars() {
        let input = "# header\nscript: |\n  # not a comment\n  echo hi\nkey: v # trailing\n  # indented comment\nend: 1";
        let expected = "script: |\n  # not a comment\n  echo hi\nkey: v # trailing\nend: 1";
        assert_eq!(yaml(input), expected);
    }

    #[test]
    fn flow_collections_on_one_line_keep_their_shape() {
        assert_eq!(
            yaml("dict: {password: foo, user: bar, nested: {token: 'x', url: http://u:p@h}}\n"),
            "dict: {password: \"********\", user: bar, nested: {token: '********', url: http://u:********@h}}\n"
        );
        assert_eq!(
            yaml(
                r#"{"api_key": "0123456789abcdef0123456789abcdef", "site": "datadoghq.eu", "secrets": ["a"]}"#
            ),
            r#"{"api_key": "***************************bcdef", "site": "datadoghq.eu", "secrets": ["a"]}"#
        );
        assert_eq!(
            yaml("- [0123456789abcdef0123456789abcdef, {community_strings: [a, b]}] # c\n"),
            "- [\"***************************bcdef\", {community_strings: \"********\"}] # c\n"
        );
        assert_eq!(
            yaml(r#"notes: {a: "password: x", b: 'see http://u:p@h'}"#),
            r#"notes: {a: "********", b: 'see http://u:********@h'}"#
        );
        // Not closed on the line: left to the text rules.
        assert_eq!(yaml("list: [a,\n  b]\n"), "list: [a,\n  b]\n");
        assert_eq!(yaml("empty: {}\nalso: []\n"), "empty: {}\nalso: []\n");
    }

    #[test]
    fn a_bare_mask_left_as_a_whole_value_is_quoted() {
        assert!(is_bare_mask("********"));
        assert!(is_bare_mask("***************************abcde"));
        assert!(!is_bare_mask("*anchor"));
        assert_eq!(
            yaml("a: ********\nb:\n  - ******** \nc: *anchor\n"),
            "a: \"********\"\nb:\n  - \"********\"\nc: *anchor\n"
        );
    }

    #[test]
    fn a_sensitive_key_without_value_stays_and_a_plain_scalar_takes_its_continuation() {
        assert_eq!(yaml("password:\nnext: 1\n"), "password:\nnext: 1\n");
        assert_eq!(
            yaml("password: first\n  second\nnext: 1\n"),
            "password: \"********\"\nnext: 1\n"
        );
    }
}
