//! The filter's cache-hit and miss paths run natively against the
//! in-memory host, so `valgrind --tool=callgrind target/release/hotpath`
//! shows where the filter's own instructions go (the PyPI Envoy is stripped
//! and runs the .wasm as V8 JIT code, so a profile of Envoy names nothing).
//! Prints ns per request for each path; run in release.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counts heap allocations, so each path's allocations per request print
/// beside its time (each is a `malloc` in the .wasm's allocator too).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

use optimizer_core::config::parse;
use optimizer_core::mem_host::MemHost;
use optimizer_core::pipeline::{
    on_done, on_request_headers, on_response_body, on_response_headers, Filter, Verdict, Worker,
};

/// The rule of the bench's I: cache, coalescing and a limiter no load
/// empties.
const CONFIG: &str = r#"{"version":1,"routes":[
  {"name":"items","match":{"prefix":"/api/items/"},"cache":{},"coalesce":{},
   "limit":{"by":"tenant","token_bucket":{"capacity":10000000,"refill_per_s":10000000}}}]}"#;

fn request(host: &mut MemHost, path: &str) {
    host.request_headers = [
        (":method", "GET"),
        (":path", path),
        (":authority", "127.0.0.1:10000"),
        (":scheme", "http"),
        ("user-agent", "wrk"),
        ("accept", "*/*"),
        ("x-tenant-id", "bench"),
        ("x-forwarded-proto", "http"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mut host = MemHost::new();
    let Ok(cfg) = parse(CONFIG.as_bytes()) else {
        eprintln!("bad config");
        std::process::exit(1);
    };
    let filter = Filter::new(cfg, &mut host);
    if filter.create_tables(&mut host).is_err() {
        eprintln!("tables");
        std::process::exit(1);
    }
    let mut worker = Worker::new(&filter.config, &mut host);

    // Store one 1 KiB entry.
    request(&mut host, "/api/items/1?size=1024");
    on_request_headers(&filter, &mut worker, &mut host, 1);
    if !worker.requests.contains_key(&1) {
        eprintln!("no exchange");
        std::process::exit(1);
    }
    let answer: Vec<(String, Vec<u8>)> = vec![
        (":status".into(), b"200".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("cache-control".into(), b"max-age=3600".to_vec()),
        ("content-length".into(), b"1024".to_vec()),
    ];
    host.response_headers = answer.clone();
    host.response_chunk = vec![b'x'; 1024];
    on_response_headers(&filter, &mut worker, &mut host, 1, false);
    on_response_body(&filter, &mut worker, &mut host, 1, 1024, true);
    on_done(&filter, &mut worker, &mut host, 1);

    let start = Instant::now();
    let a0 = allocs();
    for i in 0..n {
        host.replies.clear();
        let stream = 2 + i as u32;
        let v = on_request_headers(&filter, &mut worker, &mut host, stream);
        if v != Verdict::Pause || host.replies.len() != 1 {
            eprintln!("not a hit");
            std::process::exit(1);
        }
        // The stream ends, as the host's own would.
        on_done(&filter, &mut worker, &mut host, stream);
    }
    let hit = start.elapsed().as_nanos() as f64 / n as f64;
    let hit_allocs = (allocs() - a0) as f64 / n as f64;

    if std::env::args().nth(2).as_deref() == Some("hit") {
        println!("hotpath hit_ns={hit:.0} hit_allocs={hit_allocs:.1} (native, in-memory host)");
        return;
    }
    // Miss path: every request a new key (lookup, election as leader).
    let start = Instant::now();
    let a0 = allocs();
    for i in 0..n.min(50_000) {
        request(&mut host, &format!("/api/items/m{i}"));
        let stream = 1_000_000 + i as u32;
        let v = on_request_headers(&filter, &mut worker, &mut host, stream);
        if v != Verdict::Continue || !worker.requests.contains_key(&stream) {
            eprintln!("not a miss");
            std::process::exit(1);
        }
        // The answer comes back and is stored, as on the gateway (the
        // filter adds its headers to the host's copy: a fresh one each).
        host.response_headers = answer.clone();
        on_response_headers(&filter, &mut worker, &mut host, stream, false);
        on_response_body(&filter, &mut worker, &mut host, stream, 1024, true);
        on_done(&filter, &mut worker, &mut host, stream);
    }
    let miss = start.elapsed().as_nanos() as f64 / n.min(50_000) as f64;
    let miss_allocs = (allocs() - a0) as f64 / n.min(50_000) as f64;
    println!(
        "hotpath hit_ns={hit:.0} hit_allocs={hit_allocs:.1} miss_ns={miss:.0} miss_allocs={miss_allocs:.1} (native, in-memory host; allocations include the in-memory host's own)"
    );
}
