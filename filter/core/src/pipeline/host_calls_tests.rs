//! How many host calls a request costs, by kind, for the request shapes
//! `make bench` measures (issue 18): every host call is a crossing of the
//! VM boundary, the part of the filter's cost that native tests can count
//! exactly. The table prints with
//! `cargo test -p optimizer-core host_call_profile -- --nocapture`; the
//! bounds below keep a change from adding calls unnoticed.

use std::collections::BTreeMap;

use crate::mem_host::{MemHost, SharedStore};
use crate::pipeline::{
    on_done, on_request_headers, on_response_body, on_response_headers, Filter, Verdict, Worker,
};

const CFG: &str = r#"{"version":1,"routes":[
  {"name":"hit","match":{"prefix":"/hit/"},"cache":{}},
  {"name":"miss","match":{"prefix":"/miss/"},"cache":{},"coalesce":{},
   "limit":{"by":"tenant","token_bucket":{"capacity":1000000,"refill_per_s":1000000}}},
  {"name":"priced","match":{"prefix":"/priced/"},"cost":{"cost_per_call":"0.002"}},
  {"name":"routed","match":{"prefix":"/routed/"},
   "routing":{"providers":[{"name":"a","upstream":"ua","cost":{"cost_per_call":"0.002"}},
                           {"name":"b","upstream":"ub","cost":{"cost_per_call":"0.001"}}]}}]}"#;

struct Run {
    host: MemHost,
    filter: Filter,
    worker: Worker,
    stream: u32,
}

impl Run {
    fn new() -> Run {
        let store = SharedStore::new_shared();
        let (host, filter, worker) = crate::pipeline::test_worker(&store, CFG, 1_000_000);
        Run {
            host,
            filter,
            worker,
            stream: 0,
        }
    }

    /// One GET of `path` through every hook (answered upstream with a
    /// 1 KiB body unless the filter answered it); its host calls.
    fn request(&mut self, path: &str) -> BTreeMap<&'static str, u64> {
        self.stream += 1;
        let id = self.stream;
        self.host.request_headers = vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"api".to_vec()),
            ("x-tenant-id".into(), b"bench".to_vec()),
        ];
        self.host.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            ("cache-control".into(), b"max-age=3600".to_vec()),
            ("content-length".into(), b"1024".to_vec()),
        ];
        self.host.response_chunk = vec![b'x'; 1024];
        self.host.take_calls();
        let (f, w, h) = (&self.filter, &mut self.worker, &mut self.host);
        let answered = on_request_headers(f, w, h, id) == Verdict::Pause;
        on_response_headers(f, w, h, id, false);
        if !answered {
            on_response_body(f, w, h, id, 1024, true);
        }
        on_done(f, w, h, id);
        self.host.take_calls()
    }
}

fn total(calls: &BTreeMap<&'static str, u64>) -> u64 {
    calls.values().sum()
}

/// Each shape on a worker that has seen only that shape (as in each of
/// `make bench`'s configurations): warmed by 20 requests of it, so what
/// the first of them created (tables, the cached entry) and what the
/// worker learnt of its traffic (`first_read`) are in place.
fn profile() -> Vec<(&'static str, BTreeMap<&'static str, u64>)> {
    let shapes: [(&'static str, &str, bool); 5] = [
        ("C: no rule matches", "/other/", true),
        ("D: cache hit", "/hit/1", false),
        ("I: miss (cache, coalesce, limit)", "/miss/", true),
        ("priced (cost per call)", "/priced/", true),
        ("R: routed", "/routed/", true),
    ];
    shapes
        .iter()
        .map(|&(name, path, unique)| {
            let mut r = Run::new();
            let path_of = |n: usize| {
                if unique {
                    format!("{path}{n}")
                } else {
                    path.to_string()
                }
            };
            for n in 0..20 {
                r.request(&path_of(n));
            }
            (name, r.request(&path_of(20)))
        })
        .collect()
}

#[test]
fn host_call_profile() {
    let rows = profile();
    let mut kinds: Vec<&str> = rows.iter().flat_map(|(_, c)| c.keys().copied()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    println!("| request | total | {} |", kinds.join(" | "));
    println!("|---|---|{}", "---|".repeat(kinds.len()));
    for (name, calls) in &rows {
        let cells: Vec<String> = kinds
            .iter()
            .map(|k| calls.get(k).map_or(String::new(), |n| n.to_string()))
            .collect();
        println!("| {name} | {} | {} |", total(calls), cells.join(" | "));
    }
    // Bounds as measured when this was written: a change that adds host
    // calls to a path fails here and says so.
    let bound = |name: &str| match name {
        n if n.starts_with("C:") => 1,
        n if n.starts_with("D:") => 6,
        n if n.starts_with("I:") => 28,
        n if n.starts_with("priced") => 10,
        _ => 17,
    };
    for (name, calls) in &rows {
        assert!(
            total(calls) <= bound(name),
            "{name}: {} host calls {calls:?}",
            total(calls)
        );
    }
}
