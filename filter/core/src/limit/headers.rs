//! The rate-limit header fields of draft-ietf-httpapi-ratelimit-headers-08
//! (Structured Fields, RFC 8941): `RateLimit-Policy` and `RateLimit`, each
//! one list item naming the policy, plus `Retry-After` and the JSON body
//! of a 429.
//!
//! Times are whole seconds rounded up, so a client that waits as told is
//! never early.

use std::fmt::Write;

use super::algo::{Algorithm, Decision};
use super::bucket;

/// The largest sf-integer (15 digits); larger values are clamped to it.
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

fn ceil_s(ms: u64) -> u64 {
    ms.div_ceil(1000).min(SF_INTEGER_MAX)
}

/// `name` as an sf-string. `"` and `\` are escaped; characters an
/// sf-string cannot hold (controls, non-ASCII) become `?`, so a route name
/// can never break the header (no CR/LF injection).
/// Room for the parameters the callers append, so a field is one
/// allocation.
fn sf_string(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 40);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// `RateLimit-Policy`: `"name";q=<quota>;w=<window s>`. For a bucket the
/// quota is the capacity and the window the time to refill it from empty
/// (at least 1 s).
pub fn policy(name: &str, algo: &Algorithm) -> String {
    let (q, w_ms) = match *algo {
        Algorithm::TokenBucket {
            capacity,
            refill_per_s,
        } => (
            capacity,
            bucket::ms_for(
                u64::from(capacity) * bucket::TOKEN,
                bucket::rate_micro(refill_per_s),
            ),
        ),
        Algorithm::SlidingWindow { limit, window_ms } => (limit, window_ms),
    };
    // One allocation: the field is made per admitted request.
    let mut out = sf_string(name);
    let _ = write!(out, ";q={q};w={}", ceil_s(w_ms).max(1));
    out
}

/// `RateLimit`: `"name";r=<remaining>;t=<s until reset>`.
pub fn ratelimit(name: &str, d: &Decision) -> String {
    let mut out = sf_string(name);
    let _ = write!(out, ";r={};t={}", d.remaining, ceil_s(d.reset_ms));
    out
}

/// `Retry-After` in seconds: 0 when admitted, at least 1 when not.
pub fn retry_after_s(d: &Decision) -> u64 {
    if d.admitted {
        0
    } else {
        ceil_s(d.retry_after_ms).max(1)
    }
}

/// The JSON body of a 429.
pub fn body(d: &Decision) -> String {
    format!(
        "{{\"error\":\"rate_limited\",\"retry_after_s\":{}}}",
        retry_after_s(d)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(remaining: u32, reset_ms: u64, retry_after_ms: u64) -> Decision {
        Decision {
            admitted: false,
            remaining,
            reset_ms,
            retry_after_ms,
        }
    }

    #[test]
    fn policy_table() {
        let bucket = |capacity, refill_per_s| Algorithm::TokenBucket {
            capacity,
            refill_per_s,
        };
        let window = |limit, window_ms| Algorithm::SlidingWindow { limit, window_ms };
        let cases = [
            ("reports", bucket(10, 10.0), r#""reports";q=10;w=1"#),
            ("reports", bucket(10, 100.0), r#""reports";q=10;w=1"#),
            ("reports", bucket(10, 3.0), r#""reports";q=10;w=4"#),
            ("r", bucket(100, 0.5), r#""r";q=100;w=200"#),
            ("r", bucket(1, 0.0), r#""r";q=1;w=999999999999999"#),
            ("r", window(60, 60_000), r#""r";q=60;w=60"#),
            ("r", window(5, 1500), r#""r";q=5;w=2"#),
            ("r", window(5, 0), r#""r";q=5;w=1"#),
            (r#"a"b\c"#, window(1, 1000), r#""a\"b\\c";q=1;w=1"#),
            ("é\r\nx", window(1, 1000), r#""???x";q=1;w=1"#),
        ];
        for (name, algo, want) in cases {
            assert_eq!(policy(name, &algo), want, "{name:?} {algo:?}");
        }
    }

    #[test]
    fn ratelimit_retry_after_and_body_table() {
        let ok = Decision {
            admitted: true,
            remaining: 4,
            reset_ms: 2001,
            retry_after_ms: 0,
        };
        // (decision, RateLimit, Retry-After, body)
        let cases = [
            (ok, r#""reports";r=4;t=3"#, 0),
            (refused(0, 2500, 2500), r#""reports";r=0;t=3"#, 3),
            (refused(0, 0, 0), r#""reports";r=0;t=0"#, 1),
            (refused(0, 1000, 1), r#""reports";r=0;t=1"#, 1),
            (
                refused(0, u64::MAX, u64::MAX),
                r#""reports";r=0;t=999999999999999"#,
                SF_INTEGER_MAX,
            ),
        ];
        for (d, want, retry) in cases {
            assert_eq!(ratelimit("reports", &d), want);
            assert_eq!(retry_after_s(&d), retry);
            assert_eq!(
                body(&d),
                format!(r#"{{"error":"rate_limited","retry_after_s":{retry}}}"#)
            );
        }
    }
}
