//! Money is integer micro-USD everywhere. The API takes either an integer
//! number of micro-USD (`12500000`) or a decimal string of US dollars
//! (`"12.50"`, at most six fractional digits).
//!
//! Reading text and the wire's amounts is `optimizer_wire::money`, shared
//! with the filter; the display format here is cost-control's own.

use optimizer_wire::Micros;
use serde::{Deserialize, Deserializer};

/// One US dollar in micro-USD.
pub const MICROS_PER_USD: i64 = optimizer_wire::money::MICROS_PER_USD as i64;

/// Parses a decimal string of US dollars (`"12.50"`, `"-1.25"`) into micro-USD.
pub fn parse_usd(s: &str) -> Result<i64, String> {
    optimizer_wire::money::parse_signed_usd(s)
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

/// serde helper: a non-negative amount, integer micro-USD or decimal USD string.
pub fn de_micros<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Micros::deserialize(d).map(Micros::as_i64)
}

/// serde helper: like [`de_micros`] but the field may be absent or null.
pub fn de_opt_micros<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<Micros>::deserialize(d).map(|m| m.map(Micros::as_i64))
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
