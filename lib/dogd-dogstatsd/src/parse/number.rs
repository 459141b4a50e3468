//! Number parsing with the exact syntax of Go's `strconv`, because the agent accepts and
//! rejects values with `strconv.ParseFloat(s, 64)` and `strconv.ParseInt(s, 10, 64)` and
//! clients rely on that (e.g. `1e3`, `+5`, `.5`, `Inf`, `NaN`, `1_000`, `0x1p-2`).
//!
//! Differences from Rust's `str::parse::<f64>`, all handled here:
//! * Go accepts `_` digit separators (only between digits), hexadecimal mantissas with a
//!   mandatory `p` exponent, and `Inf`/`Infinity` with a sign but `NaN` only unsigned;
//! * Go reports overflow to infinity as an error (`ErrRange`), Rust returns `inf`;
//! * Go stops accumulating decimal exponent digits once the exponent reaches 10000.

/// Exact powers of ten representable as `f64` (used by the fast path).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Parses `s` like Go's `strconv.ParseFloat(s, 64)`; `None` where Go returns an error.
pub(crate) fn parse_float(s: &[u8]) -> Option<f64> {
    match fast_path(s) {
        Some(value) => Some(value),
        None => slow_path(s),
    }
}

/// Parses `s` like Go's `strconv.ParseInt(s, 10, 64)` (also `strconv.Atoi` on 64-bit
/// platforms): optional sign, ASCII digits only, no underscores, range-checked.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        // i64::MIN has no positive counterpart, hence the explicit bound.
        if magnitude > 1 << 63 {
            None
        } else {
            Some((magnitude as i64).wrapping_neg())
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Clinger's fast path for the overwhelmingly common `[-+]?digits[.digits]` with at most 15
/// significant digits: the mantissa and the power of ten are both exact, so one IEEE
/// division gives the correctly rounded result (the same value Go computes).
fn fast_path(s: &[u8]) -> Option<f64> {
    let (negative, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() || body.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut fraction_digits = 0usize;
    let mut seen_dot = false;
    for &c in body {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                digits += 1;
                if seen_dot {
                    fraction_digits += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    let value = mantissa as f64 / POW10[fraction_digits];
    Some(if negative { -value } else { value })
}

/// Go's `special`: `inf`/`infinity` (signed or not) and unsigned `nan`, case-insensitive,
/// and nothing may follow.
fn special(s: &[u8]) -> Option<f64> {
    let (sign, rest, signed) = match s.first()? {
        b'+' => (1.0, &s[1..], true),
        b'-' => (-1.0, &s[1..], true),
        _ => (1.0, s, false),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(sign * f64::INFINITY);
    }
    if !signed && rest.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    None
}

/// The full Go grammar: decimal or hexadecimal mantissa, underscores, exponents.
fn slow_path(s: &[u8]) -> Option<f64> {
    if let Some(value) = special(s) {
        return Some(value);
    }
    let mut i = 0;
    let mut negative = false;
    match s.first()? {
        b'+' => i += 1,
        b'-' => {
            negative = true;
            i += 1;
        }
        _ => {}
    }
    let hex = i + 2 < s.len() && s[i] == b'0' && (s[i + 1] | 0x20) == b'x';
    if hex {
        i += 2;
    }
    let base: u64 = if hex { 16 } else { 10 };
    let max_mantissa_digits = if hex { 16 } else { 19 };

    let mut underscores = false;
    let mut saw_dot = false;
    let mut saw_digits = false;
    let mut mantissa: u64 = 0;
    let mut truncated = false;
    let mut nd: i64 = 0; // significant digits seen
    let mut nd_mantissa: i64 = 0; // digits kept in `mantissa`
    let mut dp: i64 = 0; // position of the decimal point
    while i < s.len() {
        let c = s[i];
        let digit = match c {
            b'_' => {
                underscores = true;
                i += 1;
                continue;
            }
            b'.' => {
                if saw_dot {
                    break;
                }
                saw_dot = true;
                dp = nd;
                i += 1;
                continue;
            }
            b'0'..=b'9' => u64::from(c - b'0'),
            b'a'..=b'f' | b'A'..=b'F' if hex => u64::from((c | 0x20) - b'a' + 10),
            _ => break,
        };
        saw_digits = true;
        i += 1;
        if digit == 0 && nd == 0 {
            // Leading zeros only move the decimal point.
            dp -= 1;
            continue;
        }
        nd += 1;
        if nd_mantissa < max_mantissa_digits {
            mantissa = mantissa * base + digit;
            nd_mantissa += 1;
        } else if digit != 0 {
            truncated = true;
        }
    }
    if !saw_digits {
        return None;
    }
    if !saw_dot {
        dp = nd;
    }
    let mantissa_end = i;

    // Optional exponent (`e` for decimal, mandatory `p` for hexadecimal).
    let exponent_char = if hex { b'p' } else { b'e' };
    let mut exponent: i64 = 0;
    let mut exponent_capped = false;
    let mut exponent_negative = false;
    if i < s.len() && (s[i] | 0x20) == exponent_char {
        i += 1;
        if i >= s.len() {
            return None;
        }
        if s[i] == b'+' {
            i += 1;
        } else if s[i] == b'-' {
            i += 1;
            exponent_negative = true;
        }
        if i >= s.len() || !s[i].is_ascii_digit() {
            return None;
        }
        while i < s.len() && (s[i].is_ascii_digit() || s[i] == b'_') {
            if s[i] == b'_' {
                underscores = true;
            } else if exponent < 10000 {
                exponent = exponent * 10 + i64::from(s[i] - b'0');
            } else {
                // Go silently stops here; the value must be computed the same way.
                exponent_capped = true;
            }
            i += 1;
        }
    } else if hex {
        return None;
    }
    if underscores && !underscores_ok(&s[..i]) {
        return None;
    }
    if i != s.len() {
        return None;
    }

    if hex {
        let mut exp2 = 0;
        if mantissa != 0 {
            let signed_exponent = if exponent_negative {
                -exponent
            } else {
                exponent
            };
            exp2 = dp * 4 + signed_exponent - nd_mantissa * 4;
        }
        return hex_to_f64(mantissa, exp2, negative, truncated);
    }

    let value = if underscores || exponent_capped {
        // Rare: rebuild the literal without underscores and with Go's capped exponent.
        let mut normalized = String::with_capacity(s.len() + 8);
        normalized.extend(
            s[..mantissa_end]
                .iter()
                .filter(|&&c| c != b'_')
                .map(|&c| char::from(c)),
        );
        if exponent != 0 || exponent_capped {
            normalized.push('e');
            if exponent_negative {
                normalized.push('-');
            }
            normalized.push_str(&exponent.to_string());
        }
        normalized.parse::<f64>().ok()?
    } else {
        // The grammar checked above is a subset of what Rust accepts, with the same value.
        std::str::from_utf8(s).ok()?.parse::<f64>().ok()?
    };
    if value.is_infinite() {
        // Go: ErrRange.
        return None;
    }
    Some(value)
}

/// Go's `underscoreOK`: underscores must sit between digits (a base prefix counts as a
/// digit), never at the start or the end.
fn underscores_ok(s: &[u8]) -> bool {
    #[derive(PartialEq)]
    enum Saw {
        Start,
        Digit,
        Underscore,
        Other,
    }
    let mut saw = Saw::Start;
    let mut s = s;
    if let Some(b'+' | b'-') = s.first() {
        s = &s[1..];
    }
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = Saw::Digit;
        hex = (s[1] | 0x20) == b'x';
    }
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c.is_ascii_digit() || (hex && (c | 0x20).is_ascii_hexdigit()) {
            saw = Saw::Digit;
            continue;
        }
        if c == b'_' {
            if saw != Saw::Digit {
                return false;
            }
            saw = Saw::Underscore;
            continue;
        }
        if saw == Saw::Underscore {
            return false;
        }
        saw = Saw::Other;
    }
    saw != Saw::Underscore
}

/// Rounds `mantissa * 2^exp2` to the nearest `f64` (ties to even), `truncated` telling that
/// non-zero digits were dropped from the mantissa; `None` on overflow, as Go's `atofHex`.
fn hex_to_f64(mut mantissa: u64, exp2: i64, negative: bool, truncated: bool) -> Option<f64> {
    const MANTISSA_BITS: i64 = 52;
    const BIAS: i64 = -1023;
    const MAX_EXP: i64 = (1 << 11) + BIAS - 2;
    const MIN_EXP: i64 = BIAS + 1;

    let mut exp = exp2 + MANTISSA_BITS;
    // Normalise to a leading one followed by 52 bits plus two rounding bits, the lowest of
    // which is sticky (it records whether anything non-zero was shifted out).
    while mantissa != 0 && mantissa >> (MANTISSA_BITS + 2) == 0 {
        mantissa <<= 1;
        exp -= 1;
    }
    if truncated {
        mantissa |= 1;
    }
    while mantissa >> (1 + MANTISSA_BITS + 2) != 0 {
        mantissa = (mantissa >> 1) | (mantissa & 1);
        exp += 1;
    }
    // Too small: denormalise, keeping the sticky bit.
    while mantissa > 1 && exp < MIN_EXP - 2 {
        mantissa = (mantissa >> 1) | (mantissa & 1);
        exp += 1;
    }
    let mut round = mantissa & 3;
    mantissa >>= 2;
    round |= mantissa & 1; // ties go to even
    exp += 2;
    if round == 3 {
        mantissa += 1;
        if mantissa == 1 << (1 + MANTISSA_BITS) {
            mantissa >>= 1;
            exp += 1;
        }
    }
    if mantissa >> MANTISSA_BITS == 0 {
        // Subnormal or zero.
        exp = BIAS;
    }
    if exp > MAX_EXP {
        return None;
    }
    let mut bits = mantissa & ((1 << MANTISSA_BITS) - 1);
    bits |= (((exp - BIAS) & 0x7ff) as u64) << MANTISSA_BITS;
    if negative {
        bits |= 1 << 63;
    }
    Some(f64::from_bits(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(s: &str) -> Option<f64> {
        parse_float(s.as_bytes())
    }

    #[test]
    fn go_float_syntax_is_followed() {
        let accepted: &[(&str, f64)] = &[
            ("1", 1.0),
            ("-1.5", -1.5),
            ("+5", 5.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("1E-3", 0.001),
            ("1.e2", 100.0),
            ("1_000", 1000.0),
            ("1_000.5e1_0", 1000.5e10),
            ("0x1p-2", 0.25),
            ("0X1.8P1", 3.0),
            ("0x_1p0", 1.0),
            ("0x0.01p0", 1.0 / 256.0),
            ("-0x1p0", -1.0),
            ("inf", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("+INF", f64::INFINITY),
            ("1e-400", 0.0),
            ("0e99999999", 0.0),
            ("123456789012345678901234567890", 1.2345678901234568e29),
            ("0.1", 0.1),
            ("4.9e-324", 4.9e-324),
            ("1.7976931348623157e308", f64::MAX),
            ("0x1.fffffffffffffp1023", f64::MAX),
            ("0x1p-1074", 4.9e-324),
        ];
        for (input, expected) in accepted {
            assert_eq!(float(input), Some(*expected), "{input}");
        }
        assert!(float("NaN").is_some_and(f64::is_nan));
        assert!(float("nan").is_some_and(f64::is_nan));
        assert_eq!(float("-0").map(f64::to_bits), Some((-0.0f64).to_bits()));

        let rejected = [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1x",
            "1.2.3",
            " 1",
            "1 ",
            "+nan",
            "-NaN",
            "infin",
            "infinityx",
            "_1",
            "1_",
            "1__0",
            "1._5",
            "0x",
            "0x1",
            "0x1.8",
            "0xp1",
            "1e400",
            "-1e400",
            "1e100000",
            "0b101",
            "1,5",
            "١",
        ];
        for input in rejected {
            assert_eq!(float(input).map(f64::to_bits), None, "{input:?}");
        }
    }

    #[test]
    fn go_int_syntax_is_followed() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"+17"), Some(17));
        assert_eq!(parse_i64(b"-17"), Some(-17));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+",
            b"-",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"1_000",
            b"1.0",
            b" 1",
            b"0x10",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
