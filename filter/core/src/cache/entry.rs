//! A cached response as bytes in shared data. A small binary format, so a
//! hit costs no JSON; every read is bounds-checked, and bytes written by
//! another format version or damaged in any way decode to `None` (a miss),
//! never a panic.

/// Leading bytes of every entry; the last one is the format version
/// (2: `keep_until_ms` added; a version-1 entry reads as a miss).
const MAGIC: [u8; 4] = *b"COC\x02";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A stored response.
    Response {
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    },
    /// The upstream's response varies on these request headers: the real
    /// entries live under `Key::variant` keys.
    Vary { names: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The full key text, compared on every hit.
    pub key: String,
    pub stored_ms: u64,
    /// Upstream `Age` when stored, seconds.
    pub initial_age_s: u64,
    pub fresh_until_ms: u64,
    /// Served stale (one request refreshing) until then.
    pub swr_until_ms: u64,
    /// Served instead of an upstream error until then.
    pub sie_until_ms: u64,
    /// Kept until then to be revalidated (it has a validator).
    pub keep_until_ms: u64,
    /// How long the upstream took to answer, for early refresh (XFetch).
    pub fetch_ms: u32,
    /// Invalidation generations this entry was stored under:
    /// (generation slot, value).
    pub gens: Vec<(u32, u32)>,
    pub body: Body,
}

impl Entry {
    /// Until when this entry may be used at all.
    pub fn usable_until_ms(&self) -> u64 {
        self.fresh_until_ms
            .max(self.swr_until_ms)
            .max(self.sie_until_ms)
            .max(self.keep_until_ms)
    }

    /// The first value of a stored response header (names are stored
    /// lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        let Body::Response { headers, .. } = &self.body else {
            return None;
        };
        headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Bytes this entry holds, for the L1 byte bound.
    pub fn weight(&self) -> usize {
        let body = match &self.body {
            Body::Response { headers, body, .. } => {
                body.len()
                    + headers
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 8)
                        .sum::<usize>()
            }
            Body::Vary { names } => names.iter().map(|n| n.len() + 8).sum(),
        };
        self.key.len() + body + 96
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(self.weight() + 64);
        w.extend_from_slice(&MAGIC);
        put_bytes(&mut w, self.key.as_bytes());
        for v in [
            self.stored_ms,
            self.initial_age_s,
            self.fresh_until_ms,
            self.swr_until_ms,
            self.sie_until_ms,
            self.keep_until_ms,
        ] {
            w.extend_from_slice(&v.to_le_bytes());
        }
        w.extend_from_slice(&self.fetch_ms.to_le_bytes());
        w.extend_from_slice(&(self.gens.len() as u32).to_le_bytes());
        for (slot, gen) in &self.gens {
            w.extend_from_slice(&slot.to_le_bytes());
            w.extend_from_slice(&gen.to_le_bytes());
        }
        match &self.body {
            Body::Response {
                status,
                headers,
                body,
            } => {
                w.push(0);
                w.extend_from_slice(&status.to_le_bytes());
                w.extend_from_slice(&(headers.len() as u32).to_le_bytes());
                for (k, v) in headers {
                    put_bytes(&mut w, k.as_bytes());
                    put_bytes(&mut w, v);
                }
                put_bytes(&mut w, body);
            }
            Body::Vary { names } => {
                w.push(1);
                w.extend_from_slice(&(names.len() as u32).to_le_bytes());
                for n in names {
                    put_bytes(&mut w, n.as_bytes());
                }
            }
        }
        w
    }

    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let mut r = Reader { b: bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return None;
        }
        let key = r.string()?;
        let stored_ms = r.u64()?;
        let initial_age_s = r.u64()?;
        let fresh_until_ms = r.u64()?;
        let swr_until_ms = r.u64()?;
        let sie_until_ms = r.u64()?;
        let keep_until_ms = r.u64()?;
        let fetch_ms = r.u32()?;
        let n = r.count(8)?;
        let mut gens = Vec::with_capacity(n);
        for _ in 0..n {
            gens.push((r.u32()?, r.u32()?));
        }
        let body = match r.take(1)?[0] {
            0 => {
                let status = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
                let n = r.count(8)?;
                let mut headers = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = r.string()?;
                    let v = r.bytes()?.to_vec();
                    headers.push((k, v));
                }
                let body = r.bytes()?.to_vec();
                Body::Response {
                    status,
                    headers,
                    body,
                }
            }
            1 => {
                let n = r.count(4)?;
                let mut names = Vec::with_capacity(n);
                for _ in 0..n {
                    names.push(r.string()?);
                }
                Body::Vary { names }
            }
            _ => return None,
        };
        if r.at != bytes.len() {
            return None;
        }
        Some(Entry {
            key,
            stored_ms,
            initial_age_s,
            fresh_until_ms,
            swr_until_ms,
            sie_until_ms,
            keep_until_ms,
            fetch_ms,
            gens,
            body,
        })
    }
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    w.extend_from_slice(&(b.len() as u32).to_le_bytes());
    w.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A count of items each at least `min` bytes long, refused when the
    /// rest of the input could not hold them (no huge allocation from a
    /// damaged length).
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.checked_mul(min)? <= self.b.len() - self.at).then_some(n)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            key: "v1\nt=acme\nm=GET\np=/a\nq=".into(),
            stored_ms: 1,
            initial_age_s: 2,
            fresh_until_ms: 3,
            swr_until_ms: 4,
            sie_until_ms: 5,
            keep_until_ms: 11,
            fetch_ms: 6,
            gens: vec![(7, 8), (9, 10)],
            body: Body::Response {
                status: 200,
                headers: vec![("content-type".into(), b"application/json".to_vec())],
                body: b"{\"a\":1}".to_vec(),
            },
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        let v = Entry {
            body: Body::Vary {
                names: vec!["accept-language".into()],
            },
            ..sample()
        };
        assert_eq!(Entry::decode(&v.encode()), Some(v));
    }

    #[test]
    fn damaged_or_foreign_bytes_are_a_miss() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert_eq!(Entry::decode(&bytes[..cut]), None, "truncated at {cut}");
        }
        let mut other_version = bytes.clone();
        other_version[3] = 1;
        assert_eq!(Entry::decode(&other_version), None);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Entry::decode(&trailing), None);
        assert_eq!(Entry::decode(b"{\"json\":true}"), None);
        // Flip every byte in turn: never a panic.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xFF;
            let _ = Entry::decode(&b);
        }
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Entry::decode(&huge), None);
    }
}
