//! Fuzz targets for every decoder and parser that reads bytes from
//! outside the filter or from shared data: the filter config, cache
//! headers and dates, cache key normalisation, stored cache entries and
//! every shared-data record (cache index, coalescing marker, limiter
//! record, allowance slot, route health, purge and generation records),
//! the batch codecs on upstream answers, OpenAI-style `usage` bodies,
//! cost-control's answers as the filter reads them, the spend buffer,
//! and cost-control's own request bodies.
//!
//! Each target is one `fn(&[u8])` that calls the real code of
//! `optimizer-core` or `cost-control` and panics only when that code
//! panics or a property the target checks fails. Two engines run them:
//!
//! - `src/bin/fuzz.rs`, the stable driver (the smoke in `make test`, and
//!   `make fuzz` where libFuzzer cannot be built): seeds from the real
//!   encoders, byte-level mutations, no coverage feedback;
//! - `libfuzzer/`, coverage-guided libFuzzer over the same functions
//!   (`make fuzz`), built with stable rustc's SanitizerCoverage flags.
//!
//! Both install [`alloc_bound::Counting`] and fail an input whose largest
//! allocation, or growth of live memory, passes [`alloc_bound::bound`].
//!
//! See README.md ("Fuzzing") for how to run them and what was reached.

// A target reports a broken property the way a decoder's bug shows
// itself, by panicking: the engines catch it and keep the input.
#![allow(clippy::panic)]

pub mod alloc_bound;
pub mod input;
pub mod mutate;
pub mod targets;

/// One fuzz target.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// Small valid inputs, built with the real encoders where there is
    /// one, so that mutations start deep in the format.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens the mutator inserts (field names, magic bytes).
    pub dict: &'static [&'static [u8]],
}

const JSON_DICT: &[&[u8]] = &[
    b"{\"",
    b"\":",
    b"\"version\":1",
    b"\"routes\":[",
    b"\"responses\":[",
    b"\"status\":",
    b"\"headers\":{",
    b"\"body\":",
    b"\"id\":\"m1\"",
    b"\"usage\":{",
    b"\"prompt_tokens\":",
    b"\"completion_tokens\":",
    b"\"model\":",
    b"\"temperature\":0",
    b"\"seed\":",
    b"\"stream\":true",
    b"\"messages\":[{\"role\":\"user\",\"content\":\"",
    b"data: ",
    b"data: [DONE]\n\n",
    b"\n\n",
    b"\r\n",
    b"\"granted_micros\":",
    b"\"allowance_id\":",
    b"\"expires_at_ms\":",
    b"\"purges\":[",
    b"\"generation\":",
    b"\"kind\":\"prefix\"",
    b"\"kind\":\"tag\"",
    b"\"kind\":\"key\"",
];

const CONFIG_DICT: &[&[u8]] = &[
    b"\"cache\":{",
    b"\"coalesce\":{",
    b"\"limit\":{",
    b"\"token_bucket\":{\"capacity\":5,\"refill_per_s\":0.5}",
    b"\"sliding_window\":{\"limit\":10,\"window_s\":60}",
    b"\"batch\":{",
    b"\"routing\":{",
    b"\"cost\":{",
    b"\"budget\":{",
    b"\"accounting\":{",
    b"\"cache_store\":{",
    b"\"coalesce_store\":{",
    b"\"limit_store\":{",
    b"\"identity\":{",
    b"\"match\":{\"prefix\":\"/\"}",
    b"\"max_entries\":",
    b"\"ways\":",
    b"\"slots\":",
    b"\"queue_bound\":",
    b"\"max_size\":",
    b"\"window_ms\":",
    b"\"default_ttl_s\":",
    b"\"max_ttl_s\":",
    b"\"statuses\":[",
    b"\"0.001\"",
    b"\"1e9\"",
];

const HEADER_DICT: &[&[u8]] = &[
    b"\ncache-control: ",
    b"\ncdn-cache-control: ",
    b"\nexpires: ",
    b"\ndate: ",
    b"\nage: ",
    b"\nlast-modified: ",
    b"\netag: ",
    b"\nif-none-match: ",
    b"\nif-modified-since: ",
    b"\nif-match: ",
    b"\nrange: ",
    b"\nif-range: ",
    b"\n:status: ",
    b"max-age=",
    b"s-maxage=",
    b"stale-while-revalidate=",
    b"stale-if-error=",
    b"no-store",
    b"no-cache",
    b"must-understand",
    b"private",
    b"public",
    b"W/\"",
    b"bytes=",
    b"bytes=-",
    b"GMT",
    b"Mon, ",
    b"Monday, ",
    b"Feb",
    b" 29 ",
    b"23:59:60",
];

const BINARY_DICT: &[&[u8]] = &[
    b"COC\x02",
    b"CIX\x01",
    b"CIF\x02",
    b"CRL\x01",
    b"RTH\x01",
    b"\x01",
    b"\x00\x00\x00\x80",
    b"\xff\xff\xff\x7f",
];

const CONTROL_DICT: &[&[u8]] = &[
    b"\"tenant\":\"acme\"",
    b"\"batch_id\":",
    b"\"gateway_id\":",
    b"\"events\":[{",
    b"\"cost_micros\":",
    b"\"baseline_micros\":",
    b"\"ts\":",
    b"\"count\":",
    b"\"want_micros\":",
    b"\"ttl_secs\":",
    b"\"daily_limit_micros\":",
    b"\"monthly_limit_micros\":",
    b"\"soft_limit_percent\":",
    b"\"utc_offset\":",
    b"\"prefix\":",
    b"\"tag\":",
    b"\"key\":",
    b"2025-03-10T12:00:00Z",
    b"+14:00",
    b"&from=",
    b"&to=",
    b"&group_by=",
    b"tenant=",
];

/// Every target, in the order the driver runs them.
pub fn targets() -> Vec<Target> {
    use targets::{bodies, control, exchange, http, shared};
    vec![
        Target {
            name: "config",
            run: http::config,
            seeds: http::config_seeds,
            dict: CONFIG_DICT,
        },
        Target {
            name: "http_headers",
            run: http::http_headers,
            seeds: http::http_headers_seeds,
            dict: HEADER_DICT,
        },
        Target {
            name: "http_date",
            run: http::http_date,
            seeds: http::http_date_seeds,
            dict: HEADER_DICT,
        },
        Target {
            name: "cache_exchange",
            run: exchange::cache_exchange,
            seeds: exchange::cache_exchange_seeds,
            dict: HEADER_DICT,
        },
        Target {
            name: "cache_key",
            run: http::cache_key,
            seeds: http::cache_key_seeds,
            dict: HEADER_DICT,
        },
        Target {
            name: "cache_entry",
            run: shared::cache_entry,
            seeds: shared::cache_entry_seeds,
            dict: BINARY_DICT,
        },
        Target {
            name: "header_pairs",
            run: shared::header_pairs,
            seeds: shared::header_pairs_seeds,
            dict: BINARY_DICT,
        },
        Target {
            name: "cache_index",
            run: shared::cache_index,
            seeds: shared::cache_index_seeds,
            dict: BINARY_DICT,
        },
        Target {
            name: "coalesce_marker",
            run: shared::coalesce_marker,
            seeds: shared::coalesce_marker_seeds,
            dict: BINARY_DICT,
        },
        Target {
            name: "limiter",
            run: shared::limiter,
            seeds: shared::limiter_seeds,
            dict: BINARY_DICT,
        },
        Target {
            name: "allowance",
            run: shared::allowance,
            seeds: shared::allowance_seeds,
            dict: BINARY_DICT,
        },
        Target {
            name: "allowance_write",
            run: shared::allowance_write,
            seeds: shared::allowance_write_seeds,
            dict: JSON_DICT,
        },
        Target {
            name: "route_health",
            run: shared::route_health,
            seeds: shared::route_health_seeds,
            dict: BINARY_DICT,
        },
        Target {
            name: "purge_records",
            run: shared::purge_records,
            seeds: shared::purge_records_seeds,
            dict: BINARY_DICT,
        },
        Target {
            name: "batch_answer",
            run: bodies::batch_answer,
            seeds: bodies::batch_answer_seeds,
            dict: JSON_DICT,
        },
        Target {
            name: "usage_body",
            run: bodies::usage_body,
            seeds: bodies::usage_body_seeds,
            dict: JSON_DICT,
        },
        Target {
            name: "prompt_body",
            run: bodies::prompt_body,
            seeds: bodies::prompt_body_seeds,
            dict: JSON_DICT,
        },
        Target {
            name: "event_stream",
            run: bodies::event_stream,
            seeds: bodies::event_stream_seeds,
            dict: JSON_DICT,
        },
        Target {
            name: "lease_grant",
            run: bodies::lease_grant,
            seeds: bodies::lease_grant_seeds,
            dict: JSON_DICT,
        },
        Target {
            name: "purge_snapshot",
            run: bodies::purge_snapshot,
            seeds: bodies::purge_snapshot_seeds,
            dict: JSON_DICT,
        },
        Target {
            name: "spend_buffer",
            run: bodies::spend_buffer,
            seeds: bodies::spend_buffer_seeds,
            dict: BINARY_DICT,
        },
        Target {
            name: "control_json",
            run: control::control_json,
            seeds: control::control_json_seeds,
            dict: CONTROL_DICT,
        },
    ]
}

/// The target of this name.
pub fn target(name: &str) -> Option<Target> {
    targets().into_iter().find(|t| t.name == name)
}

static EXEMPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The current input did work that is not the input's doing (a target
/// building its fixture, e.g. cost-control's app and store): the driver
/// does not hold this input to the allocation bound.
pub fn exempt_input() {
    EXEMPT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`exempt_input`] was called since the last call (and reset).
pub fn take_exempt() -> bool {
    EXEMPT.swap(false, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    /// Seeds are only useful if they reach the decoder's far side: the
    /// config seeds must be configs the filter accepts.
    #[test]
    fn config_seeds_parse() {
        let bad: Vec<String> = crate::targets::http::config_seeds()
            .iter()
            .filter_map(|s| {
                let e = optimizer_core::config::parse(s).err()?;
                Some(format!("{}: {e}", String::from_utf8_lossy(s)))
            })
            .collect();
        assert!(bad.is_empty(), "{bad:#?}");
    }
}
