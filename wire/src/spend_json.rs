//! The spend batch written straight into its body, without serde.
//!
//! A gateway writes a batch per second per worker, each event a handful
//! of strings; serde_json's string writer cost Kong's engine about 3,000
//! instructions per priced request (issue 18). This writes the same bytes
//! as `serde_json::to_vec(&batch)` (the tests compare them, escapes
//! included), so `cost-control` reads it with the same `SpendBatch` type.

use alloc::vec::Vec;

use crate::decimal::{push_i64 as signed, push_u64 as unsigned};
use crate::spend::{SpendBatch, SpendEvent, Ts};

impl SpendBatch<&str> {
    /// The batch as JSON, the bytes `serde_json::to_vec` writes for it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.events.len() * 192);
        out.extend_from_slice(b"{\"batch_id\":");
        string(&mut out, self.batch_id);
        out.extend_from_slice(b",\"gateway_id\":");
        string(&mut out, self.gateway_id);
        out.extend_from_slice(b",\"events\":[");
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            event(&mut out, e);
        }
        out.extend_from_slice(b"]}");
        out
    }
}

fn event(out: &mut Vec<u8>, e: &SpendEvent<&str>) {
    out.extend_from_slice(b"{\"tenant\":");
    string(out, e.tenant);
    out.extend_from_slice(b",\"service\":");
    string(out, e.service);
    out.extend_from_slice(b",\"route\":");
    string(out, e.route);
    out.extend_from_slice(b",\"provider\":");
    string(out, e.provider);
    out.extend_from_slice(b",\"strategy\":");
    string(out, e.strategy);
    out.extend_from_slice(b",\"cost_micros\":");
    unsigned(out, e.cost_micros.0);
    if let Some(b) = e.baseline_micros {
        out.extend_from_slice(b",\"baseline_micros\":");
        unsigned(out, b.0);
    }
    out.extend_from_slice(b",\"ts\":");
    match &e.ts {
        Ts::Ms(ms) => signed(out, *ms),
        Ts::Text(t) => string(out, t),
    }
    if let Some(id) = e.allowance_id {
        out.extend_from_slice(b",\"allowance_id\":");
        string(out, id);
    }
    if let Some(n) = e.count {
        out.extend_from_slice(b",\"count\":");
        signed(out, n);
    }
    out.push(b'}');
}

/// A JSON string as serde_json writes it: `"` and `\` escaped, control
/// characters as `\b \t \n \f \r` or `\u00xx` (lowercase hex), everything
/// else (non-ASCII included) as it is. Unescaped runs are copied whole.
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rest = s.as_bytes();
    out.reserve(rest.len() + 2);
    out.push(b'"');
    // Find the next byte to escape with a loop that does nothing else: on
    // the usual string (ASCII names, ids) that is one pass and one copy.
    while let Some(i) = rest
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
    {
        out.extend_from_slice(&rest[..i]);
        let b = rest[i];
        rest = &rest[i + 1..];
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0a => b'n',
            0x0c => b'f',
            0x0d => b'r',
            _ => b'u',
        };
        if short == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(short);
        }
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    use crate::money::Micros;
    use crate::spend::{SpendBatch, SpendEvent, Ts};

    fn event(text: &str, n: u64) -> SpendEvent<&str> {
        SpendEvent {
            tenant: text,
            service: if n.is_multiple_of(2) { "" } else { text },
            route: "/api/items/ é \u{1F600}",
            provider: text,
            strategy: "upstream",
            cost_micros: Micros(n),
            baseline_micros: (!n.is_multiple_of(3)).then_some(Micros(u64::MAX - n)),
            ts: if n.is_multiple_of(5) {
                Ts::Text("2026-11-30T10:00:00Z")
            } else {
                Ts::Ms(if n.is_multiple_of(7) {
                    i64::MIN
                } else {
                    1_796_063_765_768 - n as i64
                })
            },
            allowance_id: (n % 4 == 1).then_some(text),
            count: (n % 6 == 2).then_some(if n % 12 == 2 { -(n as i64) } else { n as i64 }),
        }
    }

    #[test]
    fn the_same_bytes_as_serde_json_escapes_and_all() {
        // Every ASCII byte, alone and between letters, and some non-ASCII.
        let mut texts: Vec<String> = (0u8..0x80)
            .flat_map(|b| {
                [
                    String::from(b as char),
                    alloc::format!("a{}b{}", b as char, b as char),
                ]
            })
            .collect();
        texts.extend(
            [
                "",
                "bench",
                "ümlaut \u{7f} \u{2028}",
                "\"\\/\\\"",
                "ten\u{0}ant",
            ]
            .map(String::from),
        );
        for (n, text) in texts.iter().enumerate() {
            let batch = SpendBatch {
                batch_id: text.as_str(),
                gateway_id: "gw-1",
                events: vec![event(text, n as u64), event("x", n as u64 + 1)],
            };
            assert_eq!(
                String::from_utf8(batch.to_json()).unwrap(),
                serde_json::to_string(&batch).unwrap(),
                "text {text:?}"
            );
        }
        let empty = SpendBatch {
            batch_id: "b",
            gateway_id: "g",
            events: vec![],
        };
        assert_eq!(empty.to_json(), serde_json::to_vec(&empty).unwrap());
    }

    #[test]
    fn what_it_writes_reads_back_as_the_batch() {
        let batch = SpendBatch {
            batch_id: "gw-00ff-1",
            gateway_id: "gw",
            // Amounts cost-control accepts (at most i64::MAX).
            events: (0..40)
                .map(|n| {
                    let mut e = event("tenant \"a\"\n", n);
                    e.baseline_micros = e.baseline_micros.map(|_| Micros(2 * n));
                    e
                })
                .collect(),
        };
        let back: SpendBatch<String> = serde_json::from_slice(&batch.to_json()).unwrap();
        assert_eq!(back.events.len(), 40);
        for (b, e) in back.events.iter().zip(&batch.events) {
            assert_eq!(b.tenant, e.tenant);
            assert_eq!(b.cost_micros, e.cost_micros);
            assert_eq!(b.baseline_micros, e.baseline_micros);
            assert_eq!(b.count, e.count);
            assert_eq!(b.allowance_id.as_deref(), e.allowance_id);
        }
    }
}
