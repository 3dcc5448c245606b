//! Integers written as decimal text without `core::fmt`.
//!
//! The request path names shared-data keys, coalescing keys and
//! `cache-status` values with numbers in them several times per request;
//! Kong's profile of the miss path (issue 18) showed `core::fmt`'s
//! machinery (`fmt::write`, `pad_integral`, `Display`) at about 1 % of the
//! gateway's CPU per request in wasm. These write the same digits.

/// Append `n` in decimal.
pub fn push_u64(out: &mut String, n: u64) {
    // SAFETY: `optimizer_wire::decimal` writes ASCII digits only, and
    // ASCII is UTF-8 (pushed char by char they cost about 250
    // instructions per number in wasm, and a checked `from_utf8` as many
    // again: callgrind on Kong's engine, issue 18).
    optimizer_wire::decimal::push_u64(unsafe { out.as_mut_vec() }, n);
}

/// Append `n` in decimal, with a `-` when negative.
pub fn push_i64(out: &mut String, n: i64) {
    // SAFETY: as in `push_u64`: ASCII digits and `-` only.
    optimizer_wire::decimal::push_i64(unsafe { out.as_mut_vec() }, n);
}

/// Append `n` as two digits (`n` below 100; larger values keep their
/// last two).
pub fn push_2(out: &mut String, n: u64) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_digits_as_display() {
        for n in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            4095,
            65_536,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for n in [0i64, -1, 7, -3600, i64::MIN, i64::MAX] {
            let mut s = String::from("x");
            push_i64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
        for n in [0u64, 5, 10, 59, 99] {
            let mut s = String::new();
            push_2(&mut s, n);
            assert_eq!(s, format!("{n:02}"));
        }
    }
}
