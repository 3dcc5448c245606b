//! Request ids: UUIDv4 text from a per-worker generator.
//!
//! Each worker seeds its own xoshiro256** from 256 bits of host entropy, so
//! ids are unique across workers without any shared state and cost no host
//! call per request.

#[derive(Debug, Clone)]
pub struct RequestIds {
    s: [u64; 4],
}

impl RequestIds {
    /// `seed` comes from the host's entropy; an all-zero state would be
    /// stuck, so it is nudged away from it.
    pub fn new(seed: [u64; 4]) -> Self {
        let mut s = seed;
        if s.iter().all(|&w| w == 0) {
            s[0] = 0x9E37_79B9_7F4A_7C15;
        }
        RequestIds { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A new id in UUIDv4 text form (RFC 9562), 36 characters.
    pub fn next_id(&mut self) -> String {
        let hi = (self.next_u64() & !0xF000) | 0x4000; // version 4
        let lo = (self.next_u64() & !(0b11 << 62)) | (0b10 << 62); // variant 10
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        let mut out = String::with_capacity(36);
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xF) as usize] as char);
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether a client-sent id is safe to keep: bounded, visible ASCII, no
/// separators that would break logs or headers.
pub fn acceptable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 128 && id.iter().all(|&b| b.is_ascii_graphic() && b != b',')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_uuid_v4_and_unique_within_and_across_workers() {
        let mut a = RequestIds::new([1, 2, 3, 4]);
        let mut b = RequestIds::new([5, 6, 7, 8]);
        let mut seen = HashSet::new();
        for _ in 0..50_000 {
            for g in [&mut a, &mut b] {
                let id = g.next_id();
                assert_eq!(id.len(), 36);
                assert_eq!(&id[14..15], "4", "{id}");
                assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
                assert!(seen.insert(id));
            }
        }
    }

    #[test]
    fn zero_seed_still_generates() {
        let mut g = RequestIds::new([0; 4]);
        assert_ne!(g.next_id(), g.next_id());
    }

    #[test]
    fn acceptable_ids() {
        assert!(acceptable(b"abc-123"));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"a b"));
        assert!(!acceptable(b"a,b"));
        assert!(!acceptable(&[b'a'; 129]));
        assert!(!acceptable(b"\xff"));
    }
}
