//! Spend batches a gateway's filter wrote to its log when it was stopped
//! (written by `filter/core/src/cost/spend_spill.rs`, which says why), read
//! back so `cost-control spend replay` can send them to `POST /v1/spend`.
//!
//! A line carries one part of one batch's JSON body:
//! `cost-optimizer spend-spill v1 <batch_id> <part>/<parts> <hex>`, after
//! whatever prefix the gateway's log adds (and before any suffix: nginx
//! appends `, context: ...`). A batch is replayed only when every part was
//! found; the same part found twice (a log read twice) counts once, and
//! two different texts for one part make the batch unusable rather than
//! guessed at.

use std::collections::BTreeMap;

const MARKER: &str = "cost-optimizer spend-spill v1 ";
/// More parts than any batch a filter writes (its bodies are bounded by
/// `max_events`); a larger count is damage.
const MAX_PARTS: usize = 100_000;

/// One batch, whole, in the order its first part appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub batch_id: String,
    pub body: Vec<u8>,
}

/// What a log held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub batches: Vec<Batch>,
    /// Batches with a part missing or conflicting: `(batch_id, why)`.
    pub unusable: Vec<(String, String)>,
    /// Lines with the marker that could not be read.
    pub bad_lines: usize,
}

#[derive(Default)]
struct Parts {
    count: usize,
    parts: BTreeMap<usize, Vec<u8>>,
    conflict: bool,
}

fn parse_line(rest: &str) -> Option<(&str, usize, usize, Vec<u8>)> {
    let mut fields = rest.splitn(3, ' ');
    let id = fields.next().filter(|s| !s.is_empty())?;
    let (part, count) = fields.next()?.split_once('/')?;
    let (part, count): (usize, usize) = (part.parse().ok()?, count.parse().ok()?);
    if part == 0 || part > count || count > MAX_PARTS {
        return None;
    }
    let hex: &str = fields.next().unwrap_or("");
    let end = hex
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(hex.len());
    let hex = &hex[..end];
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((id, part, count, bytes))
}

/// Every spilled batch in `log`.
pub fn find(log: &str) -> Found {
    let mut found = Found::default();
    let mut order: Vec<String> = Vec::new();
    let mut by_id: BTreeMap<String, Parts> = BTreeMap::new();
    for line in log.lines() {
        let Some(at) = line.find(MARKER) else {
            continue;
        };
        let Some((id, part, count, bytes)) = parse_line(&line[at + MARKER.len()..]) else {
            found.bad_lines += 1;
            continue;
        };
        let entry = by_id.entry(id.to_string()).or_insert_with(|| {
            order.push(id.to_string());
            Parts {
                count,
                ..Parts::default()
            }
        });
        if entry.count != count {
            entry.conflict = true;
            continue;
        }
        match entry.parts.get(&part) {
            Some(seen) if *seen != bytes => entry.conflict = true,
            Some(_) => {}
            None => {
                entry.parts.insert(part, bytes);
            }
        }
    }
    for id in order {
        let Some(p) = by_id.remove(&id) else {
            continue;
        };
        if p.conflict {
            found
                .unusable
                .push((id, "two different texts for one part".into()));
        } else if p.parts.len() != p.count {
            let why = format!("{} of {} parts found", p.parts.len(), p.count);
            found.unusable.push((id, why));
        } else {
            let body = p.parts.into_values().flatten().collect();
            found.batches.push(Batch { batch_id: id, body });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn parts_in_any_order_after_any_prefix_join_into_their_batch() {
        let body = br#"{"batch_id":"gw-1","events":[]}"#;
        let (a, b) = body.split_at(10);
        let log = format!(
            "[2026][warning][wasm] wasm log x: {MARKER}gw-1 2/2 {}\n\
             noise\n\
             2026/11/30 [error] 12#0: *3 [wasm] {MARKER}gw-1 1/2 {}, context: ngx_proxy_wasm_root\n\
             {MARKER}gw-1 1/2 {}\n",
            hex(b),
            hex(a),
            hex(a)
        );
        let found = find(&log);
        assert_eq!(
            found.batches,
            vec![Batch {
                batch_id: "gw-1".into(),
                body: body.to_vec()
            }]
        );
        assert!(found.unusable.is_empty());
        assert_eq!(found.bad_lines, 0);
    }

    #[test]
    fn a_missing_or_conflicting_part_makes_a_batch_unusable_not_guessed() {
        let log = format!(
            "{MARKER}a 1/2 7b7d\n{MARKER}b 1/1 7b\n{MARKER}b 1/1 7d\n{MARKER}c 1/1 7b7d\n\
             {MARKER}d 0/1 7b\n{MARKER}d 1/1 7\n{MARKER} 1/1 7b\n{MARKER}e 2/1 7b\n"
        );
        let found = find(&log);
        assert_eq!(found.batches.len(), 1);
        assert_eq!(found.batches[0].batch_id, "c");
        let ids: Vec<&str> = found.unusable.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(found.bad_lines, 4);
    }
}
