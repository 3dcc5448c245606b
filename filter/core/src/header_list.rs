//! A header map as the host hands it over: its pair encoding
//! (`header_pairs`), checked once and then read in place. One buffer per
//! map instead of a `String` and a `Vec` per header: on a cache hit that was
//! 16 of the filter's allocations (#18), and keeping a request's headers
//! for later (a parked request, a `Vary` key) is one copy, not one per
//! header.

use std::fmt;

use crate::header_pairs;

/// Header pairs in the host's encoding, with where each name and value
/// lies in it. The invariant, set by every constructor and kept by
/// `set_value` (which only appends): every span lies inside `wire`, and
/// every name is UTF-8.
#[derive(Clone, Default)]
pub struct HeaderList {
    wire: Vec<u8>,
    spans: Vec<Span>,
}

/// One pair's place in the buffer. Offsets are `u32`, as the encoding's
/// lengths are, so a span is 16 bytes and a lookup compares lengths
/// before it touches a name.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Span {
    name: u32,
    name_len: u32,
    value: u32,
    value_len: u32,
}

impl Span {
    fn name(&self) -> std::ops::Range<usize> {
        self.name as usize..self.name as usize + self.name_len as usize
    }

    fn value(&self) -> std::ops::Range<usize> {
        self.value as usize..self.value as usize + self.value_len as usize
    }
}

impl HeaderList {
    /// The host's bytes, kept as they are when they are well formed. A
    /// damaged encoding is refused (`None`); a name that is not UTF-8 is
    /// kept in its lossy form, as the decoded copies this replaced did.
    pub fn from_wire(wire: Vec<u8>) -> Option<HeaderList> {
        let spans = index(&wire)?;
        let names_utf8 = spans
            .iter()
            .all(|s| std::str::from_utf8(&wire[s.name()]).is_ok());
        if names_utf8 {
            return Some(HeaderList { wire, spans });
        }
        let lossy: Vec<(String, &[u8])> = spans
            .iter()
            .map(|s| {
                let name = String::from_utf8_lossy(&wire[s.name()]).into_owned();
                (name, &wire[s.value()])
            })
            .collect();
        Some(HeaderList::from_pairs(
            lossy.iter().map(|(k, v)| (k.as_str(), *v)),
        ))
    }

    /// Encode pairs the filter holds (the in-memory host's, a rebuilt map).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone) -> Self {
        let wire = header_pairs::encode_all(pairs);
        // What was just written is well formed; only a list past 4 GiB
        // is not (`index` refuses it), and it is kept as no headers
        // rather than cut.
        match index(&wire) {
            Some(spans) => HeaderList { wire, spans },
            None => HeaderList::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Each pair in the host's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.spans.iter().map(|s| (self.name(s), self.value(s)))
    }

    /// First value of `name` (ASCII case-insensitive), compared as bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.spans
            .iter()
            .find(|s| {
                s.name_len as usize == name.len()
                    && self.name(s).as_bytes().eq_ignore_ascii_case(name)
            })
            .map(|s| self.value(s))
    }

    /// Give the first header named `name` (exact) this value; the rest
    /// stay as they were. Kong's raw `:path` replaces its normalised one.
    /// The value is appended to the buffer and the span moved to it, so
    /// nothing is re-encoded (a rebuilt list cost Kong's hit 1,000 wasm
    /// instructions); a list that would pass 4 GiB keeps its old value.
    pub fn set_value(&mut self, name: &str, value: &[u8]) {
        let Some(span) = self.spans.iter().position(|s| self.name(s) == name) else {
            return;
        };
        let (Ok(at), Ok(len)) = (u32::try_from(self.wire.len()), u32::try_from(value.len())) else {
            return;
        };
        if at.checked_add(len).is_none() {
            return;
        }
        self.wire.extend_from_slice(value);
        if let Some(s) = self.spans.get_mut(span) {
            s.value = at;
            s.value_len = len;
        }
    }

    /// Owned pairs, for code that builds a new header set from these.
    pub fn to_pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    fn name(&self, s: &Span) -> &str {
        let bytes = self.wire.get(s.name()).unwrap_or_default();
        // SAFETY: every constructor checks (or writes) each name as UTF-8
        // and no method changes `wire` or `spans` afterwards.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    fn value(&self, s: &Span) -> &[u8] {
        self.wire.get(s.value()).unwrap_or_default()
    }
}

/// Lists are equal when they hold the same pairs in the same order,
/// wherever in their buffers the bytes lie.
impl PartialEq for HeaderList {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for HeaderList {}

impl fmt::Debug for HeaderList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(k, v)| (k, String::from_utf8_lossy(v))))
            .finish()
    }
}

impl<'a> From<&'a [(String, Vec<u8>)]> for HeaderList {
    fn from(pairs: &'a [(String, Vec<u8>)]) -> Self {
        HeaderList::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }
}

impl<'a> From<&'a [(&'a str, &'a [u8])]> for HeaderList {
    fn from(pairs: &'a [(&'a str, &'a [u8])]) -> Self {
        HeaderList::from_pairs(pairs.iter().copied())
    }
}

/// Where each pair of an encoding lies, checking every bound on the way;
/// `None` at the first that does not hold, so a damaged buffer is refused
/// and never indexed out of range.
fn index(wire: &[u8]) -> Option<Vec<Span>> {
    if wire.is_empty() {
        return Some(Vec::new());
    }
    // Offsets are kept as `u32`.
    u32::try_from(wire.len()).ok()?;
    let u32_at = |at: usize| -> Option<usize> {
        let b = wire.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = u32_at(0)?;
    let mut pos = count.checked_mul(8)?.checked_add(4)?;
    // A count the buffer cannot hold is refused before anything is sized by it.
    if pos > wire.len() {
        return None;
    }
    let mut field = |len: usize| -> Option<usize> {
        let start = pos;
        let end = start.checked_add(len)?;
        if wire.get(end) != Some(&0) {
            return None;
        }
        pos = end + 1;
        Some(start)
    };
    let mut spans = Vec::with_capacity(count);
    for i in 0..count {
        let name_len = u32_at(4 + i * 8)?;
        let value_len = u32_at(8 + i * 8)?;
        let name = field(name_len)?;
        let value = field(value_len)?;
        // Each fits: both lie inside `wire`, whose length is a u32.
        spans.push(Span {
            name: name as u32,
            name_len: name_len as u32,
            value: value as u32,
            value_len: value_len as u32,
        });
    }
    Some(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_bytes_read_as_the_pairs_they_encode() {
        let pairs: Vec<(&str, &[u8])> = vec![
            (":path", b"/a"),
            ("X-Tenant", b"\xff\x00y"),
            ("", b""),
            ("x-tenant", b"second"),
        ];
        let list = HeaderList::from_wire(header_pairs::encode(&pairs)).unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(list.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(list.get("x-TENANT"), Some(&b"\xff\x00y"[..]));
        assert_eq!(list.get(":method"), None);
        assert_eq!(list, HeaderList::from(&pairs[..]));
        let owned = list.to_pairs();
        assert_eq!(HeaderList::from(&owned[..]), list);
    }

    #[test]
    fn damaged_bytes_are_refused_at_every_cut() {
        let enc = header_pairs::encode(&[(":path", b"/a"), ("x", b"y")]);
        for cut in 1..enc.len() {
            assert!(
                HeaderList::from_wire(enc[..cut].to_vec()).is_none(),
                "cut at {cut}"
            );
        }
        assert!(HeaderList::from_wire(vec![255, 255, 255, 255]).is_none());
        let mut no_nul = enc.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'z';
        assert!(HeaderList::from_wire(no_nul).is_none());
        assert!(HeaderList::from_wire(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn a_name_that_is_not_utf8_is_kept_lossily() {
        let enc = header_pairs::encode(&[("a", b"1")]);
        let mut bad = enc.clone();
        let name_at = 4 + 8;
        bad[name_at] = 0xff;
        let list = HeaderList::from_wire(bad).unwrap();
        assert_eq!(
            list.iter().collect::<Vec<_>>(),
            vec![("\u{fffd}", &b"1"[..])]
        );
    }

    #[test]
    fn set_value_replaces_the_first_of_a_name_only() {
        let mut raw = HeaderList::from(&[(":path", &b"/n"[..]), ("a", b"1"), (":path", b"/x")][..]);
        raw.set_value(":path", b"/%41");
        raw.set_value("absent", b"v");
        assert_eq!(raw.len(), 3);
        assert_eq!(
            raw.iter().collect::<Vec<_>>(),
            vec![(":path", &b"/%41"[..]), ("a", b"1"), (":path", b"/x")]
        );
        assert_eq!(raw.get(":PATH"), Some(&b"/%41"[..]));
        // Equal to the list built with that value, though its bytes lie
        // elsewhere in the buffer.
        let built = HeaderList::from(&[(":path", &b"/%41"[..]), ("a", b"1"), (":path", b"/x")][..]);
        assert_eq!(raw, built);
        assert_ne!(raw, HeaderList::from(&[(":path", &b"/n"[..])][..]));
    }
}
