//! The spend a worker still holds when its host ends the filter, written
//! to the host's log so it can be replayed into `cost-control`
//! (`cost-control spend replay LOG`).
//!
//! Why the log: Envoy 1.40 calls the root context's `on_done` on every
//! worker when it is stopped (SIGTERM), but its event loop is already
//! gone, so an HTTP call made there is never sent (checked: the upstream
//! sees no connection); the log is the one thing the filter can still
//! write. Each batch keeps the id it would have been sent with, so a
//! batch `cost-control` already had (one whose answer was still on its
//! way) is a duplicate there and nothing is counted twice.
//!
//! The line format (read by `control/src/spill.rs`):
//!
//! ```text
//! cost-optimizer spend-spill v1 <batch_id> <part>/<parts> <hex>
//! ```
//!
//! A batch's JSON body (the `POST /v1/spend` body) is hex-encoded and cut
//! into parts of [`PART_BYTES`] bytes, so no line is longer than nginx's
//! error-log line (2048 bytes, with its own prefix) and no character of a
//! tenant name can break a line or a field.

use super::{Content, SpendBuffer};

/// Raw body bytes per log line (twice that in hex).
pub const PART_BYTES: usize = 512;

/// The marker `cost-control` looks for.
pub const MARKER: &str = "cost-optimizer spend-spill v1";

impl SpendBuffer {
    /// Everything this buffer holds, as the batches that carry it: the
    /// batch out or waiting for its retry (same id, same body), then every
    /// buffered event and folded sum in batches of up to `max_events`,
    /// then each parked tenant's sum in a batch of its own. The buffer is
    /// empty afterwards.
    pub fn spill(&mut self, max_events: usize) -> Vec<super::OutgoingBatch> {
        let mut out = Vec::new();
        if let Some(c) = self.current.take() {
            out.push(c.batch);
        }
        while self.pending() > 0 {
            let content = self.take(max_events.max(1));
            out.push(self.build(&content));
        }
        for (tenant, p) in std::mem::take(&mut self.parked) {
            let content = Content {
                sums: vec![((tenant, None), p.sum)],
                events: Vec::new(),
                parked: Some(p.refusals),
            };
            out.push(self.build(&content));
        }
        out
    }
}

/// The log lines that carry `batch_id`'s `body`.
pub fn lines(batch_id: &str, body: &[u8]) -> Vec<String> {
    let mut chunks: Vec<&[u8]> = body.chunks(PART_BYTES).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let parts = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut line = format!("{MARKER} {batch_id} {}/{parts} ", i + 1);
            for b in *chunk {
                line.push(HEX[usize::from(b >> 4)] as char);
                line.push(HEX[usize::from(b & 0xf)] as char);
            }
            line
        })
        .collect()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::super::{FlushOutcome, SpendEvent};
    use super::*;

    fn ev(tenant: &str, cost: u64) -> SpendEvent {
        SpendEvent {
            tenant: tenant.into(),
            service: "svc".into(),
            route: "r".into(),
            provider: "p".into(),
            strategy: "upstream",
            cost_micros: cost,
            baseline_micros: cost,
            ts_ms: 1_000,
            allowance_id: None,
        }
    }

    fn requests_and_cost(body: &[u8]) -> (u64, u64) {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let evs = v["events"].as_array().cloned().unwrap_or_default();
        evs.iter().fold((0, 0), |(n, c), e| {
            (
                n + e.get("count").and_then(|c| c.as_u64()).unwrap_or(1),
                c + e["cost_micros"].as_u64().unwrap_or(0),
            )
        })
    }

    #[test]
    fn a_spill_carries_every_request_and_micro_once() {
        let mut b = SpendBuffer::new("gw", 7, 4);
        for i in 0..10 {
            b.push(ev(if i % 2 == 0 { "a" } else { "b" }, 100 + i));
        }
        // One batch out (its answer never came), one refused (parked).
        let out = b.next_batch(0, 0, 3).unwrap_or_else(|| panic!("a batch"));
        let refused = b.next_batch(0, 0, 3);
        assert!(refused.is_none(), "one batch at a time");
        b.on_result(0, FlushOutcome::Rejected, 0, 100, 1000);
        let again = b.next_batch(0, 0, 3).unwrap_or_else(|| panic!("a batch"));
        let spilled = b.spill(3);
        assert_eq!(b.pending(), 0);
        assert_eq!(b.parked(), (0, 0));
        assert!(!b.busy());
        assert_eq!(spilled[0], again, "the batch out keeps its id and body");
        assert_ne!(spilled[0].batch_id, out.batch_id);
        let (n, c) = spilled
            .iter()
            .map(|s| requests_and_cost(&s.body))
            .fold((0, 0), |(n, c), (a, b)| (n + a, c + b));
        assert_eq!((n, c), (10, (100..110).sum::<u64>()));
        let mut ids: Vec<&str> = spilled.iter().map(|s| s.batch_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), spilled.len(), "every batch has an id of its own");
        assert!(b.spill(3).is_empty());
    }

    #[test]
    fn lines_cut_a_body_into_hex_parts_that_join_back() {
        let body: Vec<u8> = (0..=255u8).cycle().take(PART_BYTES * 2 + 3).collect();
        let written = lines("gw-1", &body);
        assert_eq!(written.len(), 3);
        let mut joined = Vec::new();
        for (i, l) in written.iter().enumerate() {
            let rest = l
                .strip_prefix(&format!("{MARKER} gw-1 {}/3 ", i + 1))
                .unwrap_or_else(|| panic!("{l}"));
            assert!(rest.len() <= PART_BYTES * 2);
            let bytes: Vec<u8> = rest
                .as_bytes()
                .chunks(2)
                .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("zz"), 16))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{e}"));
            joined.extend(bytes);
        }
        assert_eq!(joined, body);
        assert_eq!(lines("gw-2", b"").len(), 1);
    }
}
