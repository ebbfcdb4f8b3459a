//! Go's text conventions that leak into BuildKit's messages and image history: `%q`
//! quoting, `time.Duration` parsing and printing, `%v` of a string slice, `strconv` errors.
//!
//! Users compare Strata's messages and `history.created_by` lines with BuildKit's, so these
//! follow Go's output byte for byte where the conformance data looks at them.

use std::time::Duration;

/// Go `strconv.Quote` (shared with the parser's AST dump).
pub use crate::parser::go_quote;

/// The quoting `time.ParseDuration` uses in its messages (not `strconv.Quote`: non-ASCII
/// bytes become `\xNN`).
fn time_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if (c as u32) >= 0x80 || c < ' ' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Go `fmt` `%v` of a `[]string`: `[a b c]`, elements unquoted.
pub fn go_string_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

const NANOS_LIMIT: u128 = 1 << 63;

/// Go `time.ParseDuration`, returning nanoseconds (may be negative).
///
/// Syntax `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with units ns, us, µs, μs, ms, s, m, h;
/// a bare `0` is allowed. Error texts are Go's.
pub fn parse_go_duration(orig: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", time_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = s.bytes().take_while(|b| b.is_ascii_digit()).count();
        let mut v: u128 = 0;
        for b in s[..int_len].bytes() {
            if v > (NANOS_LIMIT - 1) / 10 {
                return Err(invalid());
            }
            v = v * 10 + u128::from(b - b'0');
            if v > NANOS_LIMIT {
                return Err(invalid());
            }
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        // Fraction part.
        let mut frac: u128 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.starts_with('.') {
            s = &s[1..];
            let frac_len = s.bytes().take_while(|b| b.is_ascii_digit()).count();
            let mut overflow = false;
            for b in s[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                if frac > (NANOS_LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = frac * 10 + u128::from(b - b'0');
                if y > NANOS_LIMIT {
                    overflow = true;
                    continue;
                }
                frac = y;
                scale *= 10.0;
            }
            post = frac_len > 0;
            s = &s[frac_len..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                time_quote(orig)
            ));
        }
        let unit_text = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u128 = match unit_text {
            "ns" => 1,
            "us" | "\u{00B5}s" | "\u{03BC}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    time_quote(unit_text),
                    time_quote(orig)
                ))
            }
        };
        if v > NANOS_LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if frac > 0 {
            // Go does this step in float64 too; the truncation matches.
            v += (frac as f64 * (unit as f64 / scale)) as u128;
            if v > NANOS_LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > NANOS_LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok(-(total as i128));
    }
    if total > NANOS_LIMIT - 1 {
        return Err(invalid());
    }
    Ok(total as i128)
}

/// Go `time.Duration.String` of a non-negative duration: `0s`, `50ns`, `1.5µs`, `100ms`,
/// `1m30s`, `2h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let u = d.as_nanos();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0 => return "0s".to_string(),
            1..=999 => (0, "ns"),
            1_000..=999_999 => (3, "\u{00B5}s"),
            _ => (6, "ms"),
        };
        let (frac, int) = fmt_frac(u, prec);
        return format!("{int}{frac}{unit}");
    }
    let (frac, rest) = fmt_frac(u, 9);
    let mut out = format!("{}{}s", rest % 60, frac);
    let minutes = rest / 60;
    if minutes > 0 {
        out = format!("{}m{}", minutes % 60, out);
        let hours = minutes / 60;
        if hours > 0 {
            out = format!("{hours}h{out}");
        }
    }
    out
}

/// Go's `fmtFrac`: the fraction `v / 10^prec` as `.123` (trailing zeros dropped, nothing
/// when zero) and the integer part.
fn fmt_frac(mut v: u128, prec: u32) -> (String, u128) {
    let mut digits = Vec::new();
    let mut print = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        print = print || digit != 0;
        if print {
            digits.push(char::from(b'0' + digit));
        }
        v /= 10;
    }
    if !print {
        return (String::new(), v);
    }
    digits.push('.');
    (digits.iter().rev().collect(), v)
}

/// Go `strconv.ParseInt(s, 10, bits)` with its error texts.
pub fn parse_go_int(s: &str, bits: u32) -> Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s));
    let range = || {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            go_quote(s)
        )
    };
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(syntax());
    }
    let limit: i128 = 1i128 << (bits.clamp(1, 64) - 1);
    let mut v: i128 = 0;
    // Like Go, the first bad byte or the first overflow decides the error.
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return Err(syntax());
        }
        v = v * 10 + i128::from(b - b'0');
        if v > limit {
            return Err(range());
        }
    }
    let v = if neg { -v } else { v };
    if v >= limit || v < -limit {
        return Err(range());
    }
    Ok(v as i64)
}

/// Go `strconv.ParseUint(s, base, bits)` success/failure (no sign, no prefix, no `_`).
pub fn parse_go_uint(s: &str, base: u32, bits: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let v = u64::from_str_radix(s, base).ok()?;
    if s.starts_with('+') {
        return None;
    }
    if bits < 64 && v >= (1u64 << bits) {
        return None;
    }
    Some(v)
}

/// Go `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("tab\there\n"), r#""tab\there\n""#);
        assert_eq!(go_quote("\u{0}"), r#""\x00""#);
        assert_eq!(go_quote("é♥"), "\"é♥\"");
        assert_eq!(go_quote("\u{feff}"), r#""\ufeff""#);
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("50ns"), Ok(50));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("1h2m"), Ok(3_720_000_000_000));
        assert_eq!(parse_go_duration("-3ms"), Ok(-3_000_000));
        assert_eq!(parse_go_duration(".5us"), Ok(500));
        assert_eq!(parse_go_duration("2µs"), Ok(2_000));
        assert_eq!(
            parse_go_duration(""),
            Err(r#"time: invalid duration """#.to_string())
        );
        assert_eq!(
            parse_go_duration("10"),
            Err(r#"time: missing unit in duration "10""#.to_string())
        );
        assert_eq!(
            parse_go_duration("3x"),
            Err(r#"time: unknown unit "x" in duration "3x""#.to_string())
        );
        assert_eq!(
            parse_go_duration("."),
            Err(r#"time: invalid duration ".""#.to_string())
        );
        assert!(parse_go_duration("9999999999h").is_err());
        assert!(parse_go_duration("1ß").is_err());
    }

    #[test]
    fn durations_print_like_go() {
        let ms = |n| Duration::from_millis(n);
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(50)), "50ns");
        assert_eq!(go_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(go_duration(ms(100)), "100ms");
        assert_eq!(go_duration(ms(1000)), "1s");
        assert_eq!(go_duration(ms(90_000)), "1m30s");
        assert_eq!(go_duration(ms(3_600_000)), "1h0m0s");
        assert_eq!(go_duration(ms(1_500)), "1.5s");
    }

    #[test]
    fn ints_parse_like_go() {
        assert_eq!(parse_go_int("5", 32), Ok(5));
        assert_eq!(parse_go_int("-2147483648", 32), Ok(-2147483648));
        assert_eq!(
            parse_go_int("2147483648", 32),
            Err(r#"strconv.ParseInt: parsing "2147483648": value out of range"#.to_string())
        );
        assert_eq!(
            parse_go_int("x", 32),
            Err(r#"strconv.ParseInt: parsing "x": invalid syntax"#.to_string())
        );
        assert_eq!(parse_go_uint("0755", 8, 32), Some(0o755));
        assert_eq!(parse_go_uint("+7", 8, 32), None);
        assert_eq!(parse_go_uint("9", 8, 32), None);
        assert_eq!(parse_go_bool("True"), Some(true));
        assert_eq!(parse_go_bool("yes"), None);
    }
}
