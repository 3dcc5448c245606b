//! What arrives with a request or a response: the filter config (from the
//! gateway), `Cache-Control` / `Expires` / `Date` / `Age` / `ETag` /
//! `Range` headers, HTTP dates, and the path and query a cache key is
//! made of.

use optimizer_core::cache::control::{self, Policy, ResponseFacts, Statuses};
use optimizer_core::cache::{conditional, http_date, key, range};
use optimizer_core::config;
use optimizer_core::header_list::HeaderList;
use optimizer_core::headers::Headers;
use optimizer_core::mem_host::MemHost;
use optimizer_core::pipeline::{Filter, Worker};

use crate::input::{header_lines, lines, text, Input};

/// Instants the host clock can give: now-ish, the epoch (a host that
/// has no clock), and the year 2100. Bytes are what is fuzzed; the clock
/// is the host's and is not.
const NOWS: [u64; 3] = [1_741_608_000_000, 0, 4_102_444_800_000];

// --- config ------------------------------------------------------------------

/// The filter config as the gateway hands it to `on_configure`; a config
/// that parses is compiled into a filter and a worker as `on_configure`
/// does (table creation is left out: it only writes empty records).
pub fn config(data: &[u8]) {
    let Ok(cfg) = config::parse(data) else {
        return;
    };
    let mut host = MemHost::new();
    let filter = Filter::new(cfg, &mut host);
    let _worker = Worker::new(&filter.config, &mut host);
}

pub fn config_seeds() -> Vec<Vec<u8>> {
    let mut out = vec![
        include_bytes!("../../../istio/filter-config.json").to_vec(),
        b"".to_vec(),
        br#"{"version":1}"#.to_vec(),
    ];
    for s in [
        r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/a"},"cache":{"default_ttl_s":60,"statuses":["200-299",404],"ignore_query":["utm"],"vary":["accept"]}}]}"#,
        r#"{"version":1,"routes":[{"name":"l","match":{"prefix":"/l","methods":["GET","POST"]},"priority":"high","limit":{"by":"tenant","sliding_window":{"limit":10,"window_s":60},"queue_bound":5}}]}"#,
        r#"{"version":1,"cache_store":{"max_entries":64,"ways":2,"max_entry_bytes":4096},"coalesce_store":{"slots":64},"routes":[{"name":"c","match":{"prefix":"/c"},"coalesce":{"max_wait_ms":500},"cache":{"refresh":{"target":"origin","timeout_ms":900}}}]}"#,
        r#"{"version":1,"accounting":{"cost_control":"cc","authority":"cc","token":"t","gateway_id":"g","budgets":{"slots":16}},"routes":[{"name":"b","match":{"prefix":"/b"},"cost":{"provider":"p","cost_per_call":"0.01","tokens":{"max_body_bytes":65536,"models":{"m":{"prompt_per_1k":"0.5","completion_per_1k":"1.5"}},"default_model":"m"},"budget":{"estimate":"0.02","on_unavailable":"fail_open"}}}]}"#,
        r#"{"version":1,"routes":[{"name":"r","match":{"prefix":"/r"},"routing":{"strategy":"cheapest","providers":[{"name":"a","upstream":"ua","cost":{"provider":"a","cost_per_call":"0.002"}},{"name":"b","upstream":"ub","cost":{"provider":"b","cost_per_call":"0.001"}}],"breaker":{"failures":3,"open_s":2}}}]}"#,
        r#"{"version":1,"routes":[{"name":"g","match":{"prefix":"/graphql","methods":["POST"]},"batch":{"upstream":"u","authority":"a","path":"/graphql","format":"graphql","window_ms":20,"max_size":8}}]}"#,
    ] {
        out.push(s.as_bytes().to_vec());
    }
    out
}

// --- response and request headers of the cache ---------------------------------

fn policies() -> [(Statuses, Option<u64>, Option<f64>, bool); 3] {
    [
        (Statuses::Rfc, None, Some(0.1), false),
        (
            Statuses::Listed(vec![(200, 299), (404, 404)]),
            Some(60_000),
            None,
            true,
        ),
        (Statuses::Rfc, Some(31_536_000_000), Some(1.0), false),
    ]
}

/// Header lines (`name: value\n`) read as a response and as a request:
/// every freshness rule of RFC 9111 over the response's `Cache-Control`,
/// `Expires`, `Date`, `Age` and `Last-Modified`, and the request's
/// preconditions and `Range` against validators taken from the same lines.
pub fn http_headers(data: &[u8]) {
    let all = HeaderList::from(&header_lines(data)[..]);
    let h = Headers::new(&all);
    let status = h
        .get_str(":status")
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(200);
    let targeted = ["cdn-cache-control".to_string()];
    let d = control::response_directives(&h, &targeted);
    let _ = control::request_mode(&control::directives(&h));
    let age = control::age_value(&h);
    let etag = h.get_str("etag");
    let last_modified = h.get_str("last-modified");
    let date = h.get_str("date");
    for now in NOWS {
        let date_ms = date.and_then(|v| http_date::parse_ms(v, now));
        for (request_ms, response_ms) in [(now, now), (0, now), (now, 0)] {
            let age_s = control::initial_age_s(age, date_ms, request_ms, response_ms);
            let facts = ResponseFacts {
                status,
                directives: &d,
                expires: h.get_str("expires"),
                date,
                last_modified,
                has_validator: etag.is_some() || last_modified.is_some(),
                age_s,
            };
            for (statuses, default_ttl_ms, heuristic_fraction, authorization) in policies() {
                let p = Policy {
                    statuses: &statuses,
                    default_ttl_ms,
                    max_ttl_ms: 86_400_000,
                    heuristic_fraction,
                    authorization,
                };
                let _ = control::storable(facts, p, now);
            }
        }
        let _ = conditional::evaluate(&h, etag, last_modified, date, now);
        for len in [0, 1, 1000, 1 << 40] {
            let _ = range::evaluate(&h, len, etag, last_modified, date, now);
        }
    }
    if let (Some(a), Some(b)) = (etag, h.get_str("if-match")) {
        let _ = conditional::weak_match(a, b);
        let _ = conditional::strong_match(a, b);
    }
}

pub fn http_headers_seeds() -> Vec<Vec<u8>> {
    vec![
        lines(&[
            (":status", "200"),
            (
                "cache-control",
                "public, max-age=60, s-maxage=30, stale-while-revalidate=10, stale-if-error=600",
            ),
            ("date", "Mon, 10 Mar 2025 12:00:00 GMT"),
            ("age", "5"),
            ("etag", "W/\"v1\""),
            ("if-none-match", "\"v1\", W/\"v2\""),
        ]),
        lines(&[
            (":status", "404"),
            ("expires", "Sunday, 06-Nov-94 08:49:37 GMT"),
            ("date", "Sun Nov  6 08:49:37 1994"),
            ("last-modified", "Sat, 01 Jan 2000 00:00:00 GMT"),
            ("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT"),
            ("range", "bytes=0-99"),
            ("if-range", "Sat, 01 Jan 2000 00:00:00 GMT"),
        ]),
        lines(&[
            (":status", "206"),
            (
                "cdn-cache-control",
                "max-age=\"10\", must-understand, no-store",
            ),
            ("cache-control", "no-cache, private=\"set-cookie\""),
            ("age", "99999999999999999999, 3"),
            ("range", "bytes=-500"),
            ("if-match", "*"),
            ("etag", "\"a\""),
        ]),
    ]
}

// --- HTTP dates ----------------------------------------------------------------

/// The last instant `format_imf` writes as itself (9999-12-31T23:59:59Z);
/// later ones are written clamped to it.
const LAST_IMF_MS: u64 = 253_402_300_799_999;

/// `http_date::parse_ms` on the input as text; a date it reads is written
/// back by `format_imf` and must read as the same instant (the cache
/// writes `Date` headers with it), when it is within the years it writes
/// (a leap second `23:59:60` on 9999-12-31 reads as the first instant of
/// year 10000).
pub fn http_date(data: &[u8]) {
    let s = text(data);
    for now in NOWS {
        if let Some(ms) = http_date::parse_ms(&s, now).filter(|&ms| ms <= LAST_IMF_MS) {
            let again = http_date::format_imf(ms);
            let back = http_date::parse_ms(&again, now);
            assert_eq!(back, Some(ms - ms % 1000), "{s:?} -> {ms} -> {again:?}");
        }
    }
}

pub fn http_date_seeds() -> Vec<Vec<u8>> {
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Wed, 29 Feb 2024 12:00:00 GMT",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

// --- cache keys ----------------------------------------------------------------

/// Cache key normalisation: percent-decoding, query sorting and the ignored
/// parameters, the primary key with varied headers, and a variant key.
/// Input: a byte of flags, then the path and query, then `\n` and header
/// lines (the request's, and the names a response varies on).
pub fn cache_key(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let rest = input.rest();
    let (pq, headers) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let _ = key::decode(pq, flags & 1 == 1);
    let ignore = ["utm_source".to_string(), "".to_string()];
    let (path, query) = key::normalise(pq, &ignore);
    // Canonical form is a fixed point: the key of a canonical URL is
    // itself (else two spellings of one URL could share no entry).
    let mut again = path.clone().into_bytes();
    if !query.is_empty() {
        again.push(b'?');
        again.extend_from_slice(query.as_bytes());
    }
    assert_eq!(
        key::normalise(&again, &ignore),
        (path, query),
        "normalising is not idempotent"
    );
    let all = HeaderList::from(&header_lines(headers)[..]);
    let h = Headers::new(&all);
    let vary: Vec<String> = all.iter().map(|(k, _)| k.to_string()).take(8).collect();
    let method = if flags & 2 == 2 { "HEAD" } else { "GET" };
    let k = key::primary("tenant", method, pq, &ignore, &vary, &h);
    let _ = k.tag();
    let v = k.variant(&vary, &h);
    let _ = v.placement();
}

pub fn cache_key_seeds() -> Vec<Vec<u8>> {
    [
        "\0/api/items/1?b=2&a=1&utm_source=x",
        "\x01/a%2Fb/%7e/caf%C3%A9?q=a+b&q=%2B&&=x#frag",
        "\0/x?%zz=%&a==b\naccept-language: en\naccept: */*",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}
