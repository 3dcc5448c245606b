//! Money is integer micro-USD everywhere. The API takes either an integer
//! number of micro-USD (`12500000`) or a decimal string of US dollars
//! (`"12.50"`, at most six fractional digits).

use serde::{Deserialize, Deserializer};

/// One US dollar in micro-USD.
pub const MICROS_PER_USD: i64 = 1_000_000;

/// Parses a decimal string of US dollars (`"12.50"`) into micro-USD.
pub fn parse_usd(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits, ""),
    };
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
        return Err(format!("not a decimal amount of USD: {s:?}"));
    }
    if frac.len() > 6 {
        return Err("at most 6 fractional digits (micro-USD)".into());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "amount too large".to_string())?
    };
    let mut frac_micros: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        frac_micros += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
    }
    let v = whole
        .checked_mul(MICROS_PER_USD)
        .and_then(|w| w.checked_add(frac_micros))
        .ok_or_else(|| "amount too large".to_string())?;
    Ok(if neg { -v } else { v })
}

/// Formats micro-USD as a decimal dollar string (`12500000` → `"12.50"`).
pub fn format_usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let whole = m / 1_000_000;
    let frac = m % 1_000_000;
    if frac.checked_rem(10_000) == Some(0) {
        format!("{sign}{whole}.{:02}", frac / 10_000)
    } else {
        format!("{sign}{whole}.{frac:06}")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(i64),
    Str(String),
}

fn from_raw<E: serde::de::Error>(raw: Raw) -> Result<i64, E> {
    let v = match raw {
        Raw::Int(v) => v,
        Raw::Str(s) => parse_usd(&s).map_err(E::custom)?,
    };
    if v < 0 {
        return Err(E::custom("must not be negative"));
    }
    Ok(v)
}

/// serde helper: a non-negative amount, integer micro-USD or decimal USD string.
pub fn de_micros<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    from_raw(Raw::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected integer micro-USD or a decimal USD string")
    })?)
}

/// serde helper: like [`de_micros`] but the field may be absent or null.
pub fn de_opt_micros<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Raw>::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected integer micro-USD or a decimal USD string")
    })? {
        None => Ok(None),
        Some(raw) => from_raw(raw).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_dollars() {
        assert_eq!(parse_usd("12.50"), Ok(12_500_000));
        assert_eq!(parse_usd("50"), Ok(50_000_000));
        assert_eq!(parse_usd("0.000001"), Ok(1));
        assert_eq!(parse_usd(".5"), Ok(500_000));
        assert_eq!(parse_usd("-1.25"), Ok(-1_250_000));
        assert!(parse_usd("1.0000001").is_err());
        assert!(parse_usd("abc").is_err());
        assert!(parse_usd("").is_err());
        assert!(parse_usd("1e3").is_err());
        assert!(parse_usd("99999999999999999").is_err());
    }

    #[test]
    fn formats_dollars() {
        assert_eq!(format_usd(12_500_000), "12.50");
        assert_eq!(format_usd(1), "0.000001");
        assert_eq!(format_usd(-1_250_000), "-1.25");
    }
}
