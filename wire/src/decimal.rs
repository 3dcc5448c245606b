//! Integers written as decimal digits without `core::fmt`, for the
//! filter's hot paths and the spend batch's writer (issue 18 counted
//! `core::fmt`'s machinery at about 1 % of a request in wasm).

use alloc::vec::Vec;

/// Append `n` in decimal: ASCII digits only.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Append `n` in decimal, with a `-` when negative.
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}
