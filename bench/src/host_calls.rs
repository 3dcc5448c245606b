//! What the filter's host calls cost on Envoy, from this run: the P rows
//! price a call (the floor filter's reply after 20 calls of one kind,
//! less TD's reply alone, over 20), and the filter's own calls per
//! request are counted by running each configuration's filter JSON
//! natively against the in-memory host, the request shape of its load
//! repeated until the worker is warm (the same count as
//! `filter/core/src/pipeline/host_calls_tests.rs`, for the bench's own
//! configurations). Their product is the part of a configuration's cost
//! over its floor (C − T, D − TD, I − T) that host calls explain; the
//! rest is the filter's code in the VM and Envoy's work on its behalf.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use optimizer_core::config::parse;
use optimizer_core::cost::budget;
use optimizer_core::mem_host::{MemHost, CALLS_RETURNING_BYTES};
use optimizer_core::pipeline::{
    on_done, on_request_headers, on_response_body, on_response_headers, Filter, Verdict, Worker,
};
use serde_json::Value;

use crate::configs::{Config, Load, BODY_BYTES, QUERY, TENANT};
use crate::report::Row;
use crate::yaml::Filters;

/// How many calls each P row makes per request (the floor filter's
/// `CALLS`).
const P_CALLS: f64 = 20.0;

/// One request's host calls: those returning bytes, and the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub bytes: u64,
    pub other: u64,
}

fn split(calls: &BTreeMap<&'static str, u64>) -> Counts {
    let mut c = Counts::default();
    for (kind, n) in calls {
        if CALLS_RETURNING_BYTES.contains(kind) {
            c.bytes += n;
        } else {
            c.other += n;
        }
    }
    c
}

/// The host calls of one request of `config`'s shape on a warm worker;
/// `None` for a configuration without the optimizer or with JSON the
/// filter refuses.
pub fn count(config: &Config) -> Option<Counts> {
    let Filters::Wasm(json) = &config.filters else {
        return None;
    };
    count_json(json, config.load, config.headers)
}

fn count_json(json: &Value, load: Load, extra: &[(&str, &str)]) -> Option<Counts> {
    let cfg = parse(json.to_string().as_bytes()).ok()?;
    let mut host = MemHost::new();
    host.now_ms = 1_700_000_000_000;
    let filter = Filter::new(cfg, &mut host);
    filter.create_tables(&mut host).ok()?;
    // Budgets (J): the tenant holds a lease, as it does from cost-control
    // on the bench's run, so requests are granted, not parked.
    if let Some(acc) = &filter.config.accounting {
        let now = host.now_ms;
        let lease = budget::Grant {
            allowance_id: Some("bench-lease".to_string()),
            granted_micros: i64::try_from(acc.budgets.lease_micros).unwrap_or(i64::MAX),
            expires_at_ms: i64::try_from(now + 3_600_000).unwrap_or(i64::MAX),
            soft: false,
            hard: false,
        };
        budget::apply_grant(&mut host, acc.budgets.slots, TENANT.1, &lease, now, 1_000).ok()?;
    }
    let mut worker = Worker::new(&filter.config, &mut host);
    let mut last = BTreeMap::new();
    for n in 1..=21u32 {
        let path = match load {
            Load::Same => format!("/api/items/1?{QUERY}"),
            Load::Unique => format!("/api/items/u{n}?{QUERY}"),
        };
        let mut headers: Vec<(String, Vec<u8>)> = [
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", "127.0.0.1:19000"),
            (":scheme", "http"),
            ("x-forwarded-proto", "http"),
            (TENANT.0, TENANT.1),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
        headers.extend(
            extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
        );
        host.request_headers = headers;
        host.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
            ("cache-control".into(), b"max-age=3600".to_vec()),
            ("content-length".into(), BODY_BYTES.to_string().into_bytes()),
        ];
        host.response_chunk = vec![b'x'; BODY_BYTES];
        host.replies.clear();
        host.take_calls();
        let answered = on_request_headers(&filter, &mut worker, &mut host, n) == Verdict::Pause;
        on_response_headers(&filter, &mut worker, &mut host, n, false);
        if !answered {
            on_response_body(&filter, &mut worker, &mut host, n, BODY_BYTES, true);
        }
        on_done(&filter, &mut worker, &mut host, n);
        last = host.take_calls();
    }
    Some(split(&last))
}

fn cpu(rows: &[Row], id: &str) -> Option<f64> {
    rows.iter().find(|r| r.id == id)?.median_cpu()
}

/// µs of Envoy CPU per host call, from this run: (returning bytes,
/// passing bytes in). `None` unless TD and the P rows ran.
pub fn prices(rows: &[Row]) -> Option<(f64, f64)> {
    let td = cpu(rows, "TD")?;
    let per = |id: &str| cpu(rows, id).map(|c| (c - td) / P_CALLS);
    let bytes = per("PG")?;
    let other = (per("PS")? + per("PA")?) / 2.0;
    Some((bytes, other))
}

/// The configurations whose cost over a floor the section explains, and
/// that floor.
const EXPLAINED: [(&str, &str); 5] = [("C", "T"), ("D", "TD"), ("I", "T"), ("J", "T"), ("R0", "T")];

/// The host calls per request of each configuration that runs the
/// optimizer, for [`section`].
pub fn count_all(configs: &[Config]) -> Vec<(&'static str, Counts)> {
    configs
        .iter()
        .filter_map(|c| Some((c.id, count(c)?)))
        .collect()
}

/// The report's section: the price of each kind of call, and for C, D, I,
/// J and R0 how much of their cost over the floor their host calls make.
pub fn section(o: &mut String, rows: &[Row], counts: &[(&'static str, Counts)]) {
    let _ = writeln!(o, "## Host calls — what they cost on Envoy in this run\n");
    let Some((bytes_price, other_price)) = prices(rows) else {
        let _ = writeln!(
            o,
            "Not available: the section needs TD, PG, PS and PA in the run.\n"
        );
        return;
    };
    let _ = writeln!(
        o,
        "A host call that returns bytes (a header, the request's headers, a shared-data value, a body) costs **{bytes_price:.2} µs** of Envoy CPU (PG − TD over 20 calls); one that passes bytes in (a shared-data write, a header added) **{other_price:.2} µs** (PS and PA, likewise). The first kind makes the host call back into the VM to allocate what it returns.\n"
    );
    let _ = writeln!(
        o,
        "| | host calls per request: returning bytes + other | µs in host calls (priced as above) | µs over its floor | host calls' share of it |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for (id, floor) in EXPLAINED {
        let Some(&(_, n)) = counts.iter().find(|(c, _)| *c == id) else {
            continue;
        };
        let priced = n.bytes as f64 * bytes_price + n.other as f64 * other_price;
        let over = match (cpu(rows, id), cpu(rows, floor)) {
            (Some(c), Some(f)) => Some(c - f),
            _ => None,
        };
        let (over_text, share) = match over {
            Some(v) if v > 0.0 => (
                format!("{v:.1} ({id} − {floor})"),
                format!("{:.0} %", 100.0 * priced / v),
            ),
            Some(v) => (format!("{v:.1} ({id} − {floor})"), "—".to_string()),
            None => (format!("— ({id} or {floor} did not run)"), "—".to_string()),
        };
        let _ = writeln!(
            o,
            "| {id} | {} + {} | {priced:.1} | {over_text} | {share} |",
            n.bytes, n.other
        );
    }
    let _ = writeln!(
        o,
        "\nCounts come from the filter's JSON of each configuration run natively against the in-memory host, on a worker warmed by 20 requests of the configuration's load; the `.wasm` makes the same calls on Envoy (checked by counting its ABI calls there). What host calls do not explain is the filter's code in the VM and the work Envoy does for a filter that answers, stores or adds headers.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configs::{throughput_configs, I_FEATURES};
    use crate::yaml::Ports;

    fn counts(id: &str) -> Counts {
        let cs = throughput_configs(&I_FEATURES, "127.0.0.1:1", &Ports::from_base(19000));
        count(cs.iter().find(|c| c.id == id).unwrap()).unwrap()
    }

    #[test]
    fn each_shape_counts_what_the_core_profile_counts() {
        // C: one `:path` read; D: the headers (the epoch is read from a
        // counter, no bytes back); I: as the core's profile of a leased
        // limit (host_calls_tests.rs).
        assert_eq!(counts("C"), Counts { bytes: 1, other: 0 });
        assert_eq!(counts("D").bytes, 1);
        // J: the request headers (a price per call reads no response
        // headers), the request id each way and the clock twice; its
        // budget reserved in the worker's slice (no shared data), nothing
        // parked (no timer changes).
        assert_eq!(counts("J"), Counts { bytes: 1, other: 4 });
        let i = counts("I");
        assert!(i.bytes <= 8 && i.bytes + i.other <= 28, "{i:?}");
        let cs = throughput_configs(&I_FEATURES, "127.0.0.1:1", &Ports::from_base(19000));
        assert_eq!(count(cs.iter().find(|c| c.id == "A").unwrap()), None);
    }
}
