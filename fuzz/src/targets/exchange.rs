//! Whole exchanges through the pipeline's hooks, as the wasm contexts call
//! them: the upstream's response headers and body, and a second client's
//! request headers, come from the input. This reaches what the direct
//! targets cannot call: the `Vary` and `Connection` lists of a response
//! as the cache stores it, the stored variant's lookup, conditional and
//! range answers from the stored entry, and coalescing of the two.

use std::cell::RefCell;

use optimizer_core::config::{self, Config};
use optimizer_core::mem_host::{MemHost, SharedStore};
use optimizer_core::pipeline::{
    on_done, on_request_headers, on_response_body, on_response_headers, on_tick, Filter, Verdict,
    Worker,
};

use crate::input::{header_lines, lines};

const NOW: u64 = 1_741_608_000_000;

const CONFIG: &[u8] = br#"{"version":1,
  "cache_store":{"max_entries":16,"ways":4,"generation_slots":16},
  "coalesce_store":{"slots":16},
  "routes":[{"name":"items","match":{"prefix":"/api/items"},
    "cache":{"vary":["accept-language"],"max_ttl_s":3600,"related_prefixes":["/api/items"],
             "refresh":{"target":"origin","timeout_ms":900}},
    "coalesce":{}}]}"#;

thread_local! {
    static CONFIG_PARSED: RefCell<Option<Config>> = const { RefCell::new(None) };
}

fn parsed() -> Option<Config> {
    CONFIG_PARSED.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = config::parse(CONFIG).ok();
        }
        c.clone()
    })
}

fn request(extra: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), b"/api/items/1?b=2&a=1".to_vec()),
        (":authority".to_string(), b"api.test".to_vec()),
        (":scheme".to_string(), b"http".to_vec()),
        ("x-tenant-id".to_string(), b"acme".to_vec()),
    ];
    h.extend(extra.iter().cloned());
    h
}

/// One request on `stream`; when it goes upstream it is answered with
/// `response` and `body`.
fn exchange(
    f: &Filter,
    w: &mut Worker,
    h: &mut MemHost,
    stream: u32,
    req: Vec<(String, Vec<u8>)>,
    response: &[(String, Vec<u8>)],
    body: &[u8],
) {
    h.request_headers = req;
    if on_request_headers(f, w, h, stream) == Verdict::Continue {
        h.response_headers = response.to_vec();
        if !h.response_headers.iter().any(|(k, _)| k == ":status") {
            h.response_headers
                .insert(0, (":status".to_string(), b"200".to_vec()));
        }
        on_response_headers(f, w, h, stream, body.is_empty());
        if !body.is_empty() {
            h.response_chunk = body.to_vec();
            on_response_body(f, w, h, stream, body.len(), true);
        }
    }
    on_done(f, w, h, stream);
}

/// Input: the upstream's response header lines, a blank line, the second
/// client's extra request header lines, a blank line, the body.
pub fn cache_exchange(data: &[u8]) {
    let Some(cfg) = parsed() else {
        return;
    };
    let (response, rest) = split_blank(data);
    let (second, body) = split_blank(rest);
    let response = header_lines(response);
    let second = header_lines(second);
    let mut host = MemHost::with_store(SharedStore::new_shared());
    host.now_ms = NOW;
    let filter = Filter::new(cfg, &mut host);
    if filter.create_tables(&mut host).is_err() {
        return;
    }
    let mut worker = Worker::new(&filter.config, &mut host);
    let (f, w, h) = (&filter, &mut worker, &mut host);
    exchange(f, w, h, 1, request(&[]), &response, body);
    h.now_ms = NOW + 1_500;
    exchange(f, w, h, 2, request(&second), &response, body);
    h.now_ms = NOW + 90_000;
    exchange(f, w, h, 3, request(&second), &response, body);
    on_tick(f, w, h);
}

fn split_blank(b: &[u8]) -> (&[u8], &[u8]) {
    match b.windows(2).position(|p| p == b"\n\n") {
        Some(i) => (&b[..i], &b[i + 2..]),
        None => (b, &b""[..]),
    }
}

pub fn cache_exchange_seeds() -> Vec<Vec<u8>> {
    let mut a = lines(&[
        (":status", "200"),
        ("cache-control", "max-age=1, stale-while-revalidate=60"),
        ("vary", "Accept-Language, accept-encoding"),
        ("etag", "\"v1\""),
        ("connection", "x-hop"),
        ("x-hop", "1"),
        ("cache-tag", "items, Items"),
    ]);
    a.push(b'\n');
    a.extend(lines(&[
        ("accept-language", "en"),
        ("if-none-match", "\"v1\""),
        ("range", "bytes=0-3"),
    ]));
    a.push(b'\n');
    a.extend_from_slice(br#"{"id":1,"name":"one"}"#);
    let mut b = lines(&[
        (":status", "404"),
        ("expires", "Sun, 06 Nov 2044 08:49:37 GMT"),
        ("date", "Mon, 10 Mar 2025 12:00:00 GMT"),
        ("vary", "*"),
        ("age", "7"),
    ]);
    b.push(b'\n');
    b.extend(lines(&[("cache-control", "max-age=0")]));
    b.push(b'\n');
    vec![a, b]
}
