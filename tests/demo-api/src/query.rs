//! Query-string parsing: repeated keys are kept, values percent-decoded.

use std::str::FromStr;
use std::time::Duration;

use axum::http::StatusCode;

/// Decoded `key=value` pairs of a query string, in order.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parse the raw query string (without `?`); `None` gives no pairs.
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(part), String::new()),
            })
            .collect();
        Self { pairs }
    }

    /// First value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// First value of `key` parsed as `T`; an unparsable value is an error
    /// naming the parameter.
    pub fn number<T: FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("query parameter {key}={v:?} is not a valid number")),
        }
    }
}

/// Decode `%XX` escapes and `+` (space); invalid UTF-8 is replaced lossily
/// and a malformed escape is kept literally.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: Option<&u8>) -> Option<u8> {
    match b? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Largest `size=` accepted (bytes).
pub const MAX_SIZE: usize = 64 * 1024 * 1024;

/// The query parameters every API route honours.
#[derive(Debug, Default, Clone, Copy)]
pub struct Common {
    /// `status=N`: answer with this status instead of the normal one.
    pub status: Option<StatusCode>,
    /// `delay_ms=N`: sleep this long before answering.
    pub delay: Option<Duration>,
}

impl Common {
    /// Read `status=` and `delay_ms=`; a bad value is an error message.
    pub fn from_query(q: &Query) -> Result<Self, String> {
        let status = match q.number::<u16>("status")? {
            None => None,
            Some(n) => Some(
                StatusCode::from_u16(n)
                    .map_err(|_| format!("query parameter status={n} is not an HTTP status"))?,
            ),
        };
        let delay = q.number::<u64>("delay_ms")?.map(Duration::from_millis);
        Ok(Self { status, delay })
    }
}
