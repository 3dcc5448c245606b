//! The byte encoding proxy-wasm hosts use for header maps (and the
//! filter for local replies): a count, then the length of each name and
//! value, then each name and value followed by a NUL. Decoding checks every
//! bound, so damaged input is refused, never indexed out of range.

/// The host's pair encoding: count, then (name length, value length) per
/// pair, then each name and value followed by a NUL. Returns `None` on any
/// inconsistency instead of indexing out of bounds.
pub fn decode(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let u32_at = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = u32_at(0)?;
    let mut pos = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(count.min(256));
    for i in 0..count {
        let klen = u32_at(4 + i * 8)?;
        let vlen = u32_at(8 + i * 8)?;
        let key = bytes.get(pos..pos.checked_add(klen)?)?;
        pos += klen;
        if bytes.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        let value = bytes.get(pos..pos.checked_add(vlen)?)?;
        pos += vlen;
        if bytes.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        // Names are ASCII on every host seen; `from_utf8` checks that much
        // faster than the lossy conversion, which only a damaged name needs.
        let name = match std::str::from_utf8(key) {
            Ok(name) => name.to_owned(),
            Err(_) => String::from_utf8_lossy(key).into_owned(),
        };
        out.push((name, value.to_vec()));
    }
    Some(out)
}

pub fn encode(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    encode_all(pairs.iter().copied())
}

/// [`encode`] for pairs from any iterator that can be walked again (it
/// is walked three times: sizes, the length table, the bytes).
pub fn encode_all<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone) -> Vec<u8> {
    let (count, size) = pairs
        .clone()
        .into_iter()
        .fold((0usize, 4usize), |(n, s), (k, v)| {
            (n + 1, s + k.len() + v.len() + 10)
        });
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_damaged_input_is_refused() {
        let pairs: Vec<(&str, &[u8])> = vec![(":path", b"/a"), ("x", b"\xff\x00y"), ("", b"")];
        let enc = encode(&pairs);
        let dec = decode(&enc).unwrap();
        assert_eq!(dec.len(), 3);
        assert_eq!(dec[0], (":path".to_string(), b"/a".to_vec()));
        assert_eq!(dec[1].1, b"\xff\x00y");
        for cut in 1..enc.len() {
            assert!(decode(&enc[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decode(&[255, 255, 255, 255]).is_none());
        assert_eq!(decode(&[]), Some(vec![]));
    }
}
