//! Reading a target's parameters out of the fuzz input. Every read
//! answers something (zeros past the end), so no input is "too short" to
//! reach the decoder: short inputs just take the default branches.

pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        out
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    /// A length-prefixed (u16) piece.
    pub fn piece(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.bytes(n)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Text the way a host hands a header value to the filter: the filter's
/// readers see only UTF-8 (`Headers::get_str`), so other bytes are
/// replaced rather than dropped, which keeps the rest of the input.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Header lines `name: value` (one per `\n`) as the pairs the host
/// gives; a line without a colon is a name with an empty value.
pub fn header_lines(b: &[u8]) -> Vec<(String, Vec<u8>)> {
    b.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| match l.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &l[i + 1..];
                let v = v.strip_prefix(b" ").unwrap_or(v);
                (text(&l[..i]).to_ascii_lowercase(), v.to_vec())
            }
            None => (text(l).to_ascii_lowercase(), Vec::new()),
        })
        .collect()
}

/// The inverse of [`header_lines`], for seeds.
pub fn lines(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.push(b'\n');
    }
    out
}

/// A u16 length prefix then the bytes (the inverse of [`Input::piece`]).
pub fn put_piece(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&b[..n]);
}
