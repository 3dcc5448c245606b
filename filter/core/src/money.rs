//! Money is integer micro-USD inside the filter; config may write decimal
//! dollars. Parsing is decimal text → integer, never through floats, so
//! `"0.1"` is exactly 100000 micros.

/// Micro-USD in one US dollar.
pub const MICROS_PER_USD: u64 = 1_000_000;

/// Parse decimal US dollars (`"12.5"`, `"0.002"`, at most 6 decimals, no
/// sign, no exponent) into micro-USD.
pub fn parse_usd(text: &str) -> Result<u64, &'static str> {
    let t = text.trim();
    if t.is_empty() {
        return Err("must be a decimal amount of US dollars, e.g. \"0.002\"");
    }
    if t.starts_with('-') {
        return Err("must not be negative");
    }
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err("must be a decimal amount of US dollars, e.g. \"0.002\"");
    }
    if frac.len() > 6 {
        return Err("has more than 6 decimals (the unit is one micro-USD)");
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "is too large")?
    };
    let mut micros_frac: u64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        micros_frac += u64::from(b - b'0') * 10u64.pow(5 - i as u32);
    }
    whole
        .checked_mul(MICROS_PER_USD)
        .and_then(|w| w.checked_add(micros_frac))
        .ok_or("is too large")
}

/// `1234567` → `"1.234567"` (for logs and reports).
pub fn format_usd(micros: u64) -> String {
    format!("{}.{:06}", micros / MICROS_PER_USD, micros % MICROS_PER_USD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_dollars_to_micros() {
        for (text, micros) in [
            ("0.002", 2_000),
            ("0.1", 100_000),
            ("12.50", 12_500_000),
            ("3", 3_000_000),
            (".5", 500_000),
            ("0.000001", 1),
            ("0", 0),
        ] {
            assert_eq!(parse_usd(text), Ok(micros), "{text}");
        }
        for bad in [
            "",
            "-1",
            "0.0000001",
            "1e3",
            "abc",
            "1.2.3",
            ".",
            "99999999999999999999",
        ] {
            assert!(parse_usd(bad).is_err(), "{bad}");
        }
        assert_eq!(format_usd(2_000), "0.002000");
        assert_eq!(format_usd(12_500_000), "12.500000");
    }
}
