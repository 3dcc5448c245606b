//! Money is integer micro-USD inside the filter; config may write decimal
//! dollars. Parsing is decimal text → integer, never through floats, so
//! `"0.1"` is exactly 100000 micros.
//!
//! The digits are read by `optimizer_wire::money`, shared with
//! `cost-control`; the wording of errors here is for config readers.

use optimizer_wire::money::UsdError;

/// Micro-USD in one US dollar; `1234567` → `"1.234567"` (for logs and reports).
pub use optimizer_wire::money::{format_usd, MICROS_PER_USD};

/// Parse decimal US dollars (`"12.5"`, `"0.002"`, at most 6 decimals, no
/// sign, no exponent) into micro-USD.
pub fn parse_usd(text: &str) -> Result<u64, &'static str> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err("must not be negative");
    }
    optimizer_wire::money::parse_usd(t).map_err(|e| match e {
        UsdError::NotDecimal => "must be a decimal amount of US dollars, e.g. \"0.002\"",
        UsdError::TooManyDecimals => "has more than 6 decimals (the unit is one micro-USD)",
        UsdError::TooLarge => "is too large",
    })
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
