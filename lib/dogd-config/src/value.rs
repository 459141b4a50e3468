//! Parsing raw values (from YAML, environment strings or the runtime API) into a key's [`Kind`].

use serde_json::{Number, Value};

use crate::schema::Kind;

/// Parses `raw` as `kind` and returns its canonical form: integers as JSON integers, durations as
/// seconds (a JSON number), lists as arrays of strings, log levels lower-cased. The error is a short
/// reason meant to follow "invalid value for KEY: VALUE (from ORIGIN): ".
pub(crate) fn canonicalize(kind: Kind, raw: &Value) -> Result<Value, String> {
    match kind {
        Kind::Bool => parse_bool(raw).map(Value::Bool),
        Kind::Int { min, max } => {
            let n = parse_int(raw)?;
            if n < min || n > max {
                return Err(format!("must be between {min} and {max}"));
            }
            Ok(Value::from(n))
        }
        Kind::Float { min, max } => {
            let n = parse_float(raw)?;
            if !(min..=max).contains(&n) {
                return Err(format!("must be between {min} and {max}"));
            }
            Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| "must be a finite number".to_owned())
        }
        Kind::Seconds => seconds_value(parse_seconds(raw)?),
        Kind::Str | Kind::Path => scalar_text(raw)
            .map(Value::String)
            .ok_or_else(|| format!("expected a string, found {}", describe(raw))),
        Kind::LogLevel => {
            let text = scalar_text(raw)
                .ok_or_else(|| format!("expected a log level, found {}", describe(raw)))?;
            LogLevel::parse(&text)
                .map(|level| Value::String(level.as_str().to_owned()))
                .ok_or_else(|| {
                    "expected one of trace, debug, info, warn, error, critical, off".to_owned()
                })
        }
        Kind::StrList => match raw {
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    scalar_text(item).map(Value::String).ok_or_else(|| {
                        format!("list items must be strings, found {}", describe(item))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::String(text) => Ok(Value::Array(
                text.split_whitespace()
                    .map(|item| Value::String(item.to_owned()))
                    .collect(),
            )),
            other => Err(format!(
                "expected a list of strings, found {}",
                describe(other)
            )),
        },
        Kind::Any => Ok(raw.clone()),
    }
}

/// Whole seconds stay integers (`30`, not `30.0`) so they read as the user wrote them.
pub(crate) fn seconds_value(secs: f64) -> Result<Value, String> {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if secs.fract() == 0.0 && secs < EXACT_INTEGER_LIMIT {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "whole, non-negative and below 2^53"
        )]
        return Ok(Value::from(secs as u64));
    }
    Number::from_f64(secs)
        .map(Value::Number)
        .ok_or_else(|| "must be a finite number of seconds".to_owned())
}

/// Parses an environment variable's text for `kind`. Lists and scalars come as plain text; `Any`
/// values may be JSON (as the agent accepts for map-valued variables), else they stay text.
pub(crate) fn from_env_text(kind: Kind, text: &str) -> Result<Value, String> {
    let raw = match kind {
        Kind::Any => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        _ => Value::String(text.to_owned()),
    };
    canonicalize(kind, &raw)
}

/// A short description of a value's type, for error messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// How a value is shown in messages: strings bare, everything else as compact JSON.
pub(crate) fn display(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

fn scalar_text(raw: &Value) -> Option<String> {
    match raw {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_bool(raw: &Value) -> Result<bool, String> {
    match raw {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        // The spellings Go's strconv.ParseBool accepts, which is what the agent's env binding uses.
        Value::String(text) => match text.trim() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        },
        other => Err(format!("expected true or false, found {}", describe(other))),
    }
}

fn parse_int(raw: &Value) -> Result<i64, String> {
    match raw {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| "expected a whole number".to_owned()),
        Value::String(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| "expected a whole number".to_owned()),
        other => Err(format!(
            "expected a whole number, found {}",
            describe(other)
        )),
    }
}

fn parse_float(raw: &Value) -> Result<f64, String> {
    let n = match raw {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        other => return Err(format!("expected a number, found {}", describe(other))),
    };
    n.filter(|n| n.is_finite())
        .ok_or_else(|| "expected a finite number".to_owned())
}

fn parse_seconds(raw: &Value) -> Result<f64, String> {
    let secs = match raw {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| "expected a number of seconds".to_owned())?,
        Value::String(text) => parse_duration_text(text.trim())?,
        other => {
            return Err(format!(
                "expected a number of seconds, found {}",
                describe(other)
            ));
        }
    };
    if secs.is_finite() && secs >= 0.0 {
        Ok(secs)
    } else {
        Err("must be a non-negative number of seconds".to_owned())
    }
}

/// Parses `30`, `0.5`, or a Go duration string such as `1m30s`, `500ms`, `2h`.
fn parse_duration_text(text: &str) -> Result<f64, String> {
    const REASON: &str = "expected seconds (30) or a duration (30s, 1m30s, 500ms)";
    if let Ok(secs) = text.parse::<f64>() {
        return Ok(secs);
    }
    if text.is_empty() {
        return Err(REASON.to_owned());
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| REASON.to_owned())?;
        let amount: f64 = rest[..digits].parse().map_err(|_| REASON.to_owned())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(REASON.to_owned()),
        };
        total += amount * scale;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A log level, with the agent's spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
    /// Only critical failures (shown as errors; tracing has no higher level).
    Critical,
    /// Nothing.
    Off,
}

impl LogLevel {
    /// Parses a level name, case-insensitively; `warning` is `warn`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "error" => Self::Error,
            "critical" => Self::Critical,
            "off" => Self::Off,
            _ => return None,
        })
    }

    /// The canonical lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Critical => "critical",
            Self::Off => "off",
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::PORT;

    #[test]
    fn port_accepts_numbers_and_numeric_strings() {
        assert_eq!(canonicalize(PORT, &json!(5001)), Ok(json!(5001)));
        assert_eq!(canonicalize(PORT, &json!(" 5001 ")), Ok(json!(5001)));
    }

    #[test]
    fn port_rejects_out_of_range_and_text() {
        assert_eq!(
            canonicalize(PORT, &json!(70000)),
            Err("must be between 0 and 65535".to_owned())
        );
        assert_eq!(
            canonicalize(PORT, &json!("abc")),
            Err("expected a whole number".to_owned())
        );
        assert_eq!(
            canonicalize(PORT, &json!(50.5)),
            Err("expected a whole number".to_owned())
        );
        assert!(canonicalize(PORT, &json!([1])).is_err());
    }

    #[test]
    fn seconds_accept_numbers_and_go_durations() {
        let secs = |raw: Value| canonicalize(Kind::Seconds, &raw).map(|v| v.as_f64());
        assert_eq!(secs(json!(30)), Ok(Some(30.0)));
        assert_eq!(secs(json!("1m30s")), Ok(Some(90.0)));
        assert_eq!(secs(json!("500ms")), Ok(Some(0.5)));
        assert_eq!(secs(json!("2h")), Ok(Some(7200.0)));
        assert!(secs(json!("soon")).is_err());
        assert!(secs(json!(-1)).is_err());
        assert!(secs(json!("10 parsecs")).is_err());
    }

    #[test]
    fn bools_accept_go_spellings() {
        assert_eq!(canonicalize(Kind::Bool, &json!("TRUE")), Ok(json!(true)));
        assert_eq!(canonicalize(Kind::Bool, &json!("f")), Ok(json!(false)));
        assert!(canonicalize(Kind::Bool, &json!("maybe")).is_err());
        let factor = Kind::Float {
            min: 1.0,
            max: 10.0,
        };
        assert_eq!(canonicalize(factor, &json!("2.5")), Ok(json!(2.5)));
        assert!(canonicalize(factor, &json!(0.5)).is_err());
        assert!(canonicalize(factor, &json!("NaN")).is_err());
    }

    #[test]
    fn string_lists_split_text_on_whitespace() {
        assert_eq!(
            canonicalize(Kind::StrList, &json!("env:prod  team:core")),
            Ok(json!(["env:prod", "team:core"]))
        );
        assert_eq!(
            canonicalize(Kind::StrList, &json!(["a:b", 3])),
            Ok(json!(["a:b", "3"]))
        );
        assert!(canonicalize(Kind::StrList, &json!([{"a": 1}])).is_err());
    }

    #[test]
    fn log_levels_are_canonicalized() {
        assert_eq!(
            canonicalize(Kind::LogLevel, &json!("WARNING")),
            Ok(json!("warn"))
        );
        assert!(canonicalize(Kind::LogLevel, &json!("verbose")).is_err());
    }
}
