//! The stable driver's input generator: byte-level mutations of a corpus
//! (seeds built from the real encoders, plus a ring of recent mutants),
//! in the manner of libFuzzer's mutators but without coverage feedback.

/// xorshift64*: small, fast, and reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0; 0 answers 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Tokens every target gets: numbers at the edges, JSON and HTTP bits.
const COMMON_DICT: &[&[u8]] = &[
    b"0",
    b"-1",
    b"1",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"4294967295",
    b"99999999999999999999999",
    b"1e308",
    b"-0",
    b"0.5",
    b"NaN",
    b"null",
    b"true",
    b"\"\"",
    b"[]",
    b"{}",
    b"\"\xc3\xa9\"",
    b"\\u0000",
    b"\\ud800",
    b"%",
    b"%00",
    b"%zz",
    b"%C3%A9",
    b"\n",
    b",",
    b"=",
    b"\"",
    b"\xff\xff\xff\xff",
    b"\0\0\0\0",
];

const INTERESTING_U64: [u64; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    i64::MAX as u64,
    u64::MAX,
];

/// Mutate `data` in place: one to four stacked mutations, result at most
/// `max_len` bytes. `other` is a second corpus entry for crossover.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], dict: &[&[u8]], max_len: usize) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        match rng.below(12) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next_u64() as u8;
            }
            2 if !data.is_empty() => {
                // An interesting integer, little-endian, of 1, 2, 4 or 8
                // bytes (binary records are little-endian throughout).
                let v = INTERESTING_U64[rng.below(INTERESTING_U64.len())];
                let v = if rng.chance(2) { v } else { v.wrapping_sub(1) };
                let width = 1 << rng.below(4);
                let at = rng.below(data.len());
                for (k, b) in v.to_le_bytes().iter().take(width).enumerate() {
                    if let Some(slot) = data.get_mut(at + k) {
                        *slot = *b;
                    }
                }
            }
            3 => {
                let at = rng.below(data.len() + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, bytes);
            }
            4 if !data.is_empty() => {
                let at = rng.below(data.len());
                let n = 1 + rng.below((data.len() - at).min(16));
                data.drain(at..at + n);
            }
            5 if !data.is_empty() => {
                // Copy a chunk elsewhere (repeats structure: a second
                // header, another JSON member).
                let from = rng.below(data.len());
                let n = 1 + rng.below((data.len() - from).min(64));
                let chunk = data[from..from + n].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, chunk);
            }
            6 | 7 => {
                let tok = if !dict.is_empty() && rng.chance(2) {
                    dict[rng.below(dict.len())]
                } else {
                    COMMON_DICT[rng.below(COMMON_DICT.len())]
                };
                let at = rng.below(data.len() + 1);
                if rng.chance(2) || data.is_empty() {
                    data.splice(at..at, tok.iter().copied());
                } else {
                    let end = (at + tok.len()).min(data.len());
                    data.splice(at..end, tok.iter().copied());
                }
            }
            8 if !other.is_empty() => {
                // Crossover: a prefix of this input, a suffix of another.
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            9 if !data.is_empty() => {
                // Rewrite a run of ASCII digits (numbers in text formats).
                let at = rng.below(data.len());
                if let Some(start) = data[at..].iter().position(u8::is_ascii_digit) {
                    let s = at + start;
                    let e = data[s..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(data.len(), |k| s + k);
                    let n = rng.next_u64() >> rng.below(64);
                    data.splice(s..e, n.to_string().into_bytes());
                }
            }
            10 if data.len() > 1 => {
                let n = rng.below(data.len());
                data.truncate(n);
            }
            11 if !data.is_empty() => {
                // Swap two bytes.
                let a = rng.below(data.len());
                let b = rng.below(data.len());
                data.swap(a, b);
            }
            _ => {
                let n = 1 + rng.below(4);
                data.extend((0..n).map(|_| rng.next_u64() as u8));
            }
        }
    }
    data.truncate(max_len);
}
