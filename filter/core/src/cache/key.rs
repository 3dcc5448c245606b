//! Cache keys: a canonical text of everything that makes two requests the
//! same (tenant, method, path, query, varied headers) and its hashes.
//!
//! The text itself is stored in every entry, so a hash collision is a miss
//! and never another tenant's body. The per-worker tier is keyed by a fast
//! 64-bit hash of the text (a hit compares the text anyway). Shared data
//! places an entry by a 128-bit SipHash-1-3 of the text: 64 bits pick the
//! slot, 64 bits are the tag kept in the slot's index.
//!
//! Why not a cryptographic hash (sha256 was used until issue 18's
//! profile): placement is no secret. With any fixed hash, sha256
//! included, anyone can find keys of their own that share a victim's
//! slot (a slot is one of a few thousand) and crowd its ways; what keeps
//! tenants apart is the text compared on every read, not the hash. sha256
//! cost the miss path 3.7 % of Kong's CPU per request in wasm (no SHA
//! instructions there), SipHash a few dozen nanoseconds; matching a
//! victim's tag as well (128 bits) stays out of reach.

use std::cell::OnceCell;

use siphasher::sip128::SipHasher13;

use crate::headers::Headers;
use crate::shared::fnv1a;

/// Fixed keys: every worker and every gateway sharing the tables must
/// place a key in the same slot (see the module note on why they need
/// not be secret). Changing them moves every entry (a miss each, once).
const PLACEMENT_KEYS: (u64, u64) = (0x636f_7374_5f6f_7074, 0x696d_697a_6572_2f63);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub material: String,
    /// FNV-1a of the text, for the per-worker tier.
    pub fast: u64,
    /// `[tag, slot bits]`, computed once, when shared data is reached.
    placement: OnceCell<[u64; 2]>,
    /// Where the canonical path and query are in `material` ([`primary`]
    /// writes them; empty for a key made from a text): a request going
    /// upstream names its scopes with them instead of normalising its
    /// URL a second time (about 4,400 instructions per miss in wasm).
    path_at: (u32, u32),
    query_at: (u32, u32),
}

impl Key {
    pub fn from_material(material: String) -> Self {
        let fast = fnv1a(&[material.as_bytes()]);
        Key {
            material,
            fast,
            placement: OnceCell::new(),
            path_at: (0, 0),
            query_at: (0, 0),
        }
    }

    /// A key whose text starts with this one's (a variant): its path and
    /// query are where they were.
    fn extended(&self, material: String) -> Key {
        Key {
            path_at: self.path_at,
            query_at: self.query_at,
            ..Key::from_material(material)
        }
    }

    fn span(&self, (start, end): (u32, u32)) -> &str {
        self.material
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The canonical path this key was made for ([`normalise`]'s first
    /// part); empty for a key made from a text.
    pub fn path(&self) -> &str {
        self.span(self.path_at)
    }

    /// The canonical query this key was made for ([`normalise`]'s second
    /// part).
    pub fn query(&self) -> &str {
        self.span(self.query_at)
    }

    /// A key with given hashes, to test what a collision does.
    #[cfg(test)]
    pub fn with_placement(material: &str, placement: [u64; 2]) -> Self {
        let k = Key::from_material(material.to_string());
        let _ = k.placement.set(placement);
        k
    }

    /// The 128-bit SipHash of the text as `[tag, slot bits]`.
    pub fn placement(&self) -> [u64; 2] {
        *self.placement.get_or_init(|| {
            let out = SipHasher13::new_with_keys(PLACEMENT_KEYS.0, PLACEMENT_KEYS.1)
                .hash(self.material.as_bytes());
            [out.h1, out.h2]
        })
    }

    /// The key of one variant of a response that varies on request
    /// headers (upstream `Vary`): the primary key plus those values.
    pub fn variant(&self, names: &[String], headers: &Headers<'_>) -> Key {
        let mut m = self.material.clone();
        m.push_str("\nvary");
        push_headers(&mut m, names, headers);
        self.extended(m)
    }

    /// The key of a prompt: this request's key plus its body's digest
    /// (`crate::prompt`).
    pub fn with_body(self, digest: &str) -> Key {
        let (path_at, query_at) = (self.path_at, self.query_at);
        let mut m = self.material;
        m.push_str("\nb=");
        m.push_str(digest);
        Key {
            path_at,
            query_at,
            ..Key::from_material(m)
        }
    }

    /// The tag kept in the slot index.
    pub fn tag(&self) -> u64 {
        self.placement()[0]
    }

    /// The bits that pick the slot.
    pub fn slot_bits(&self) -> u64 {
        self.placement()[1]
    }
}

fn push_headers(m: &mut String, names: &[String], headers: &Headers<'_>) {
    for name in names {
        let values: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
            .collect();
        m.push('\n');
        m.push_str(name);
        m.push('=');
        m.push_str(&escape(values.join(",").as_bytes()));
    }
}

fn hex(n: u8) -> Option<u8> {
    match n {
        b'0'..=b'9' => Some(n - b'0'),
        b'a'..=b'f' => Some(n - b'a' + 10),
        b'A'..=b'F' => Some(n - b'A' + 10),
        _ => None,
    }
}

/// The bytes a percent-encoded component stands for (`+` a space when
/// `plus` is set), decoded as they are read: nothing is allocated. Invalid
/// escapes stay as they are.
#[derive(Clone)]
struct Decoded<'a> {
    raw: &'a [u8],
    plus: bool,
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.raw.split_first()?;
        if b == b'%' {
            if let [h, l, after @ ..] = rest {
                if let (Some(h), Some(l)) = (hex(*h), hex(*l)) {
                    self.raw = after;
                    return Some(h * 16 + l);
                }
            }
        }
        self.raw = rest;
        Some(if b == b'+' && self.plus { b' ' } else { b })
    }
}

fn decoded(raw: &[u8], plus: bool) -> Decoded<'_> {
    Decoded { raw, plus }
}

/// Percent-decode into a copy (`+` as space when `plus` is set). Invalid
/// escapes stay as they are.
pub fn decode(raw: &[u8], plus: bool) -> Vec<u8> {
    decoded(raw, plus).collect()
}

/// Canonical encoding: unreserved bytes as they are, everything else as
/// `%XX` uppercase, so `%7e`, `~` and `%7E` are one key.
fn escape(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(&mut out, s.iter().copied());
    out
}

/// Append `bytes` in canonical encoding.
fn push_escaped(out: &mut String, bytes: impl Iterator<Item = u8>) {
    for b in bytes {
        if unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
}

/// Bytes that stand for themselves in canonical form.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~/".contains(&b)
}

/// Append the canonical form of a percent-encoded component: decoded, then
/// re-encoded, byte by byte. A component that is already canonical (the
/// usual case) is copied as it is.
fn push_canonical(out: &mut String, raw: &[u8], plus: bool) {
    if raw.iter().all(|&b| unreserved(b)) {
        // Only ASCII here, so this is valid UTF-8.
        out.push_str(std::str::from_utf8(raw).unwrap_or_default());
    } else {
        push_escaped(out, decoded(raw, plus));
    }
}

/// Path and query in canonical form: path percent-decoded and re-encoded;
/// query parameters decoded, the ignored ones dropped, sorted, re-encoded.
pub fn normalise(path_and_query: &[u8], ignore: &[String]) -> (String, String) {
    let mut path = String::with_capacity(path_and_query.len());
    let mut query = String::with_capacity(path_and_query.len());
    push_normalised(&mut path, &mut query, path_and_query, ignore);
    (path, query)
}

/// A query parameter as it came: its name and value still encoded. They
/// are compared and written decoded, straight from these bytes (issue 18:
/// a copy of each part, decoded, then escaped again, cost a miss about a
/// dozen allocations).
struct Param<'a> {
    name: &'a [u8],
    value: &'a [u8],
}

impl Param<'_> {
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        decoded(self.name, true)
            .cmp(decoded(other.name, true))
            .then_with(|| decoded(self.value, true).cmp(decoded(other.value, true)))
    }
}

fn push_normalised(
    path_out: &mut String,
    query_out: &mut String,
    path_and_query: &[u8],
    ignore: &[String],
) {
    let end = path_and_query
        .iter()
        .position(|&b| b == b'#')
        .unwrap_or(path_and_query.len());
    let path_and_query = &path_and_query[..end];
    let (path, query) = match path_and_query.iter().position(|&b| b == b'?') {
        Some(i) => (&path_and_query[..i], &path_and_query[i + 1..]),
        None => (path_and_query, &b""[..]),
    };
    push_canonical(path_out, path, false);
    if query.is_empty() {
        return;
    }
    let mut params: Vec<Param<'_>> = query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => Param {
                name: &p[..i],
                value: &p[i + 1..],
            },
            None => Param {
                name: p,
                value: b"",
            },
        })
        .filter(|p| !ignore.iter().any(|i| decoded(p.name, true).eq(i.bytes())))
        .collect();
    params.sort_unstable_by(Param::order);
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            query_out.push('&');
        }
        push_canonical(query_out, p.name, true);
        query_out.push('=');
        push_canonical(query_out, p.value, true);
    }
}

/// The primary key of a request. HEAD shares GET's key, so a HEAD is
/// answered from a GET's entry (RFC 9110 §9.3.2).
pub fn primary(
    tenant: &str,
    method: &str,
    path_and_query: &[u8],
    ignore_query: &[String],
    vary: &[String],
    headers: &Headers<'_>,
) -> Key {
    let method = if method == "HEAD" { "GET" } else { method };
    let mut m = String::with_capacity(32 + tenant.len() + path_and_query.len() * 2);
    m.push_str("v1\nt=");
    m.push_str(tenant);
    m.push_str("\nm=");
    m.push_str(method);
    m.push_str("\np=");
    let mut query = String::new();
    let path_start = m.len();
    push_normalised(&mut m, &mut query, path_and_query, ignore_query);
    let path_at = (path_start, m.len());
    m.push_str("\nq=");
    let query_at = (m.len(), m.len() + query.len());
    m.push_str(&query);
    push_headers(&mut m, vary, headers);
    let at = |(a, b): (usize, usize)| (a as u32, b as u32);
    Key {
        path_at: at(path_at),
        query_at: at(query_at),
        ..Key::from_material(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_list::HeaderList;

    fn key(tenant: &str, method: &str, pq: &str) -> Key {
        primary(
            tenant,
            method,
            pq.as_bytes(),
            &["utm_source".into()],
            &[],
            &Headers::new(&HeaderList::default()),
        )
    }

    #[test]
    fn normalisation_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("/a?b=2&a=1", "/a", "a=1&b=2"),
            ("/a?a=%31&b=2", "/a", "a=1&b=2"),
            ("/a?a=x+y", "/a", "a=x%20y"),
            ("/a?a=x%20y", "/a", "a=x%20y"),
            ("/a?&&a=1&", "/a", "a=1"),
            ("/%7euser/%41", "/~user/A", ""),
            ("/a?utm_source=x&z", "/a", "utm_source=x&z="),
            ("/a#frag", "/a", ""),
            ("/a?x=%zz", "/a", "x=%25zz"),
            ("/a?x=%", "/a", "x=%25"),
            ("/a?x=%2541", "/a", "x=%2541"),
            ("/%2541", "/%2541", ""),
        ];
        for (input, path, query) in cases {
            let (p, q) = normalise(input.as_bytes(), &[]);
            assert_eq!((p.as_str(), q.as_str()), (*path, *query), "{input}");
        }
    }

    /// The definition `normalise` streams: each part decoded into a copy,
    /// the ignored names dropped, sorted, each part escaped.
    fn reference(pq: &[u8], ignore: &[String]) -> (String, String) {
        let pq = &pq[..pq.iter().position(|&b| b == b'#').unwrap_or(pq.len())];
        let (path, query) = match pq.iter().position(|&b| b == b'?') {
            Some(i) => (&pq[..i], &pq[i + 1..]),
            None => (pq, &b""[..]),
        };
        let mut params: Vec<(Vec<u8>, Vec<u8>)> = query
            .split(|&b| b == b'&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.iter().position(|&b| b == b'=') {
                Some(i) => (decode(&p[..i], true), decode(&p[i + 1..], true)),
                None => (decode(p, true), Vec::new()),
            })
            .filter(|(k, _)| !ignore.iter().any(|i| i.as_bytes() == k.as_slice()))
            .collect();
        params.sort();
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect();
        (escape(&decode(path, false)), query.join("&"))
    }

    #[test]
    fn normalise_streams_what_decoding_then_escaping_gives() {
        let alphabet = b"aZ09-._~/%%%+=&&?#2Ee f\xc3\xa9\n";
        let ignore = vec!["a".to_string(), "u s".to_string()];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let pq: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i % 8 * 8)) as usize + i * 7) % alphabet.len()])
                .collect();
            assert_eq!(normalise(&pq, &ignore), reference(&pq, &ignore), "{pq:?}");
        }
        // Whole escapes, upper and lower case, of bytes that stay escaped
        // and of bytes that do not.
        let tokens: [&[u8]; 14] = [
            b"%20", b"%3D", b"%3d", b"%2E", b"%41", b"%C3%A9", b"%", b"+", b"a", b"b", b"=", b"&",
            b"?", b"/",
        ];
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pq: Vec<u8> = (0..(x % 12) as usize)
                .flat_map(|i| {
                    tokens[((x >> (i * 5)) % tokens.len() as u64) as usize]
                        .iter()
                        .copied()
                })
                .collect();
            assert_eq!(normalise(&pq, &ignore), reference(&pq, &ignore), "{pq:?}");
        }
        for pq in ["/a?u+s=1&b=%zz&a=2&c", "/%41%2F?x=%e9&x=%C3%A9&y=+"] {
            assert_eq!(
                normalise(pq.as_bytes(), &ignore),
                reference(pq.as_bytes(), &ignore),
                "{pq}"
            );
        }
    }

    #[test]
    fn equal_requests_share_a_key_and_others_do_not() {
        assert_eq!(key("t", "GET", "/a?b=2&a=1"), key("t", "GET", "/a?a=1&b=2"));
        assert_eq!(key("t", "HEAD", "/a"), key("t", "GET", "/a"));
        assert_eq!(key("t", "GET", "/a?utm_source=x"), key("t", "GET", "/a"));
        assert_ne!(key("t", "GET", "/a"), key("u", "GET", "/a"));
        assert_ne!(key("t", "GET", "/a"), key("t", "GET", "/b"));
        assert_ne!(key("t", "GET", "/a?x=1"), key("t", "GET", "/a?x=2"));
        // A query value cannot forge a tenant boundary.
        assert_ne!(key("t", "GET", "/a?q=%0At=u"), key("u", "GET", "/a?q="));
    }

    #[test]
    fn a_key_knows_its_canonical_path_and_query_as_normalise_gives_them() {
        for pq in [
            "/a?b=2&a=1",
            "/%7euser/%41?x=%zz&utm_source=1",
            "/a",
            "/a?",
            "/a#f?x=1",
        ] {
            let ignore = ["utm_source".to_string()];
            let k = primary(
                "t",
                "GET",
                pq.as_bytes(),
                &ignore,
                &[],
                &Headers::new(&HeaderList::default()),
            );
            let (path, query) = normalise(pq.as_bytes(), &ignore);
            assert_eq!(
                (k.path(), k.query()),
                (path.as_str(), query.as_str()),
                "{pq}"
            );
            let vary = vec!["accept".to_string()];
            let h = [("accept".to_string(), b"x/y".to_vec())];
            let v = k
                .variant(&vary, &Headers::new(&HeaderList::from(&h[..])))
                .with_body("d");
            assert_eq!(
                (v.path(), v.query()),
                (path.as_str(), query.as_str()),
                "{pq}"
            );
        }
        assert_eq!(Key::from_material("v1\np=/a".into()).path(), "");
    }

    #[test]
    fn varied_headers_are_in_the_key() {
        let en = vec![("accept-language".to_string(), b"en".to_vec())];
        let fr = vec![("Accept-Language".to_string(), b"fr".to_vec())];
        let vary = vec!["accept-language".to_string()];
        let k = |h: &[(String, Vec<u8>)]| {
            primary(
                "t",
                "GET",
                b"/a",
                &[],
                &vary,
                &Headers::new(&HeaderList::from(h)),
            )
        };
        assert_ne!(k(&en), k(&fr));
        assert_eq!(k(&en), k(&en));
        let base = key("t", "GET", "/a");
        assert_ne!(
            base.variant(&vary, &Headers::new(&HeaderList::from(&en[..]))),
            base.variant(&vary, &Headers::new(&HeaderList::from(&fr[..])))
        );
    }
}
