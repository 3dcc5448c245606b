//! Money is integer micro-USD on both sides. Text is decimal US dollars
//! (`"12.5"`, `"0.002"`, at most six decimals), read digit by digit, never
//! through floats, so `"0.1"` is exactly 100000 micros.

use alloc::format;
use alloc::string::String;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Micro-USD in one US dollar.
pub const MICROS_PER_USD: u64 = 1_000_000;

/// Why a text is not an amount; each side words it for its own readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsdError {
    /// Not `digits[.digits]` (empty, a sign, an exponent, letters).
    NotDecimal,
    /// More than six decimals (the unit is one micro-USD).
    TooManyDecimals,
    /// More than `u64::MAX` micro-USD.
    TooLarge,
}

/// Unsigned decimal US dollars (`"12.50"`, `".5"`, `"3"`) into micro-USD.
/// No sign, no exponent, no surrounding space: callers trim and decide
/// what a sign means.
pub fn parse_usd(text: &str) -> Result<u64, UsdError> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(UsdError::NotDecimal);
    }
    if frac.len() > 6 {
        return Err(UsdError::TooManyDecimals);
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| UsdError::TooLarge)?
    };
    let mut micros_frac: u64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        micros_frac += u64::from(b - b'0') * 10u64.pow(5 - i as u32);
    }
    whole
        .checked_mul(MICROS_PER_USD)
        .and_then(|w| w.checked_add(micros_frac))
        .ok_or(UsdError::TooLarge)
}

/// `1234567` → `"1.234567"`: always six decimals, so [`parse_usd`] reads
/// it back exactly.
pub fn format_usd(micros: u64) -> String {
    format!("{}.{:06}", micros / MICROS_PER_USD, micros % MICROS_PER_USD)
}

/// An amount on the wire. Written as an integer of micro-USD; read as an
/// integer of micro-USD or a decimal USD string, never negative, at most
/// `i64::MAX` (what `cost-control` stores).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Micros(pub u64);

impl Micros {
    /// The amount as `cost-control` stores it (a read amount always fits).
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(i64),
    Str(String),
}

/// `cost-control`'s reading of a decimal USD string: an optional sign,
/// then [`parse_usd`], with its error wording (`"-1.25"` is -1250000, so a
/// negative amount is refused as negative, not as unreadable).
pub fn parse_signed_usd(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = parse_usd(digits).map_err(|e| match e {
        UsdError::NotDecimal => format!("not a decimal amount of USD: {s:?}"),
        UsdError::TooManyDecimals => "at most 6 fractional digits (micro-USD)".into(),
        UsdError::TooLarge => "amount too large".into(),
    })?;
    let v = i64::try_from(v).map_err(|_| String::from("amount too large"))?;
    Ok(if neg { -v } else { v })
}

impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Raw::deserialize(d)
            .map_err(|_| D::Error::custom("expected integer micro-USD or a decimal USD string"))?;
        let v = match raw {
            Raw::Int(v) => v,
            Raw::Str(s) => parse_signed_usd(&s).map_err(D::Error::custom)?,
        };
        u64::try_from(v)
            .map(Micros)
            .map_err(|_| D::Error::custom("must not be negative"))
    }
}
