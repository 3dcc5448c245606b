//! Issue 13, end to end on each host (Envoy, and Kong's engine): a purge
//! in cost-control (by key, prefix and tag) turns a cached HIT into a MISS
//! on both workers of two gateways within the poll interval, touches no
//! other tenant, reaches a gateway that could not see cost-control when
//! it was made once it is back, and one worker per gateway polls.
//!
//! Probes are HEAD requests on fresh connections: a HEAD is answered from
//! the GET's entry (HIT) but never stores one, so a probe that finds the
//! entry purged does not put it back for the next probe, and probes can
//! go on until both workers answered some (see `Gateway::probe_worker`
//! for how each host tells which worker did).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use e2e::control::CostControl;
use e2e::envoy_config::{self, Options};
use e2e::gateway::{Gateway, GatewayKind, WORKERS};
use e2e::http::{self, Resp};
use e2e::on_both_hosts;
use e2e::procs::{free_port, wait_for, DeadPort};
use e2e::stack::Stack;
use serde_json::json;

/// How often the filter polls in these tests.
const POLL_MS: u64 = 200;
/// How long a purge may take to show, at most (many poll intervals: the
/// machine may be busy; the time it took is printed).
const PURGE_DEADLINE: Duration = Duration::from_secs(10);

fn filter(gateway: &str) -> Options {
    Options {
        filter: json!({
            "version": 1,
            "cache_store": {"max_entries": 1024, "ways": 4},
            "accounting": {
                "cost_control": "cost_control", "token": "gateway-dev-token",
                "gateway_id": gateway, "timeout_ms": 1000, "purge_poll_ms": POLL_MS
            },
            "routes": [
                {"name": "things", "match": {"prefix": "/api/things/"},
                 "cache": {"ignore_query": ["utm_source"]}},
                {"name": "api", "match": {"prefix": "/api/"}, "debug_headers": true, "cache": {}}
            ]
        }),
        jwt: false,
    }
}

/// One gateway as the probes see it.
struct Gw<'a> {
    name: &'static str,
    gateway: &'a Gateway,
    listen: u16,
}

impl<'a> Gw<'a> {
    /// A stack's own gateway.
    fn of(s: &'a Stack) -> Gw<'a> {
        Gw {
            name: "gateway",
            gateway: &s.gateway,
            listen: s.ports.listen,
        }
    }

    fn send(&self, method: &str, tenant: &str, path: &str) -> Resp {
        http::request_fresh(
            method,
            &format!("http://127.0.0.1:{}{path}", self.listen),
            &[("x-tenant-id", tenant)],
            None,
        )
    }

    fn x_cache(&self, method: &str, tenant: &str, path: &str) -> String {
        let r = self.send(method, tenant, path);
        self.label(method, path, &r)
    }

    fn label(&self, method: &str, path: &str, r: &Resp) -> String {
        assert_eq!(
            r.status,
            200,
            "{method} {path} on {}: {}",
            self.name,
            r.text()
        );
        r.header("x-cache").unwrap_or("<none>").to_string()
    }

    /// Probe `paths` with HEADs on fresh connections until both workers
    /// answered at least one: every answer must be `want`.
    fn every_worker_says(&self, want: &str, tenant: &str, paths: &[&str]) {
        let mut reached = [false; WORKERS];
        for round in 0..40 {
            for p in paths {
                let (r, worker) =
                    self.gateway
                        .probe_worker(self.listen, "HEAD", p, &[("x-tenant-id", tenant)]);
                assert_eq!(
                    self.label("HEAD", p, &r),
                    want,
                    "HEAD {p} as {tenant} on {}, worker {worker} (round {round})",
                    self.name
                );
                reached[worker] = true;
            }
            if reached.iter().all(|r| *r) {
                return;
            }
        }
        panic!(
            "{}: 40 rounds of fresh connections never reached both workers (reached {reached:?})",
            self.name
        );
    }

    /// The purge polls this gateway made, where the host tells (Envoy's
    /// counter; `None` on Kong, whose engine here serves no counters).
    fn polls(&self) -> Option<u64> {
        self.gateway
            .envoy_stat("wasmcustom.cost_optimizer.accounting.purge_polls")
    }

    /// Store `path` (the first GET is a MISS) and check it is a HIT on
    /// both workers.
    fn cache(&self, tenant: &str, path: &str) {
        assert_eq!(self.x_cache("GET", tenant, path), "MISS", "{path}");
        self.every_worker_says("HIT", tenant, &[path]);
    }

    /// Wait until a HEAD of `path` is a MISS; the time it took.
    fn wait_for_miss(&self, tenant: &str, path: &str, since: Instant) -> Duration {
        wait_for(
            &format!("HEAD {path} as {tenant} to be a MISS on {}", self.name),
            PURGE_DEADLINE,
            || (self.x_cache("HEAD", tenant, path) == "MISS").then_some(()),
        );
        since.elapsed()
    }
}

/// For one purge: `purged` paths go (on both workers of every gateway),
/// `kept` paths of the same tenant and every path of `other` stay.
#[allow(clippy::too_many_arguments)]
fn check_purge(
    gws: &[Gw],
    s: &Stack,
    kind: &str,
    value: &str,
    purged: &[&str],
    kept: &[&str],
    other: &str,
) {
    for gw in gws {
        for tenant in ["acme", other] {
            for p in purged.iter().chain(kept) {
                gw.cache(tenant, p);
            }
        }
    }
    // A filter's timer first fires a second after it is configured:
    // measure from gateways that have polled already. Envoy counts each
    // gateway's polls; on Kong, cost-control's count of polls reaching two
    // per gateway stands for it (were one gateway still silent, its time
    // below would include its first timer's delay, and nothing else).
    for gw in gws {
        wait_for(
            &format!("a first poll from {}", gw.name),
            Duration::from_secs(30),
            || match gw.polls() {
                Some(polls) => (polls > 0).then_some(()),
                None => {
                    let (ok, not_modified) = s.control().snapshot_polls();
                    (ok + not_modified >= 2 * gws.len() as u64).then_some(())
                }
            },
        );
    }
    let at = Instant::now();
    let answer = s.control().purge("acme", kind, value);
    assert_eq!(answer["generation"], 1, "{answer}");
    // Each gateway polls on its own: wait for the first MISS on all of
    // them in one loop, so each time measured is its own.
    let mut took: Vec<Option<Duration>> = vec![None; gws.len()];
    wait_for(
        &format!(
            "{kind} purge {value:?}: HEAD {} a MISS on every gateway",
            purged[0]
        ),
        PURGE_DEADLINE,
        || {
            for (gw, t) in gws.iter().zip(took.iter_mut()) {
                if t.is_none() && gw.x_cache("HEAD", "acme", purged[0]) == "MISS" {
                    *t = Some(at.elapsed());
                }
            }
            took.iter().all(Option::is_some).then_some(())
        },
    );
    for (gw, t) in gws.iter().zip(&took) {
        eprintln!(
            "{kind} purge {value:?}: MISS on {} after {} ms (poll every {POLL_MS} ms)",
            gw.name,
            t.unwrap_or_default().as_millis()
        );
    }
    for gw in gws {
        gw.every_worker_says("MISS", "acme", purged);
        gw.every_worker_says("HIT", "acme", kept);
        let all: Vec<&str> = purged.iter().chain(kept).copied().collect();
        gw.every_worker_says("HIT", other, &all);
    }
}

on_both_hosts!(purges_by_key_prefix_and_tag_reach_both_workers_of_two_gateways);
fn purges_by_key_prefix_and_tag_reach_both_workers_of_two_gateways(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "purge-kinds", filter("gw-a"));
    let second = s.second_gateway(filter("gw-b"));
    let gws = [
        Gw {
            name: "gateway A",
            gateway: &s.gateway,
            listen: s.ports.listen,
        },
        Gw {
            name: "gateway B",
            gateway: &second.gateway,
            listen: second.listen_port(),
        },
    ];

    // Prefix: the path and everything below it, on whole segments.
    check_purge(
        &gws,
        &s,
        "prefix",
        "/api/pa",
        &["/api/pa/1?x=1", "/api/pa/2"],
        &["/api/pax/1", "/api/pb/1"],
        "globex",
    );
    // Tag: every entry whose answer carried it, in any rule, any case.
    check_purge(
        &gws,
        &s,
        "tag",
        "Blue",
        &[
            "/api/ta/1?cache-tag=blue,t1",
            "/api/things/t2?cache-tag=BLUE",
        ],
        &["/api/ta/3?cache-tag=red", "/api/ta/4"],
        "globex",
    );
    // Key: one URL as a user writes it (its rule ignores utm_source, the
    // parameter order does not matter), not its siblings.
    check_purge(
        &gws,
        &s,
        "key",
        "/api/things/k1?utm_source=news&b=2&a=1",
        &["/api/things/k1?a=1&b=2"],
        &[
            "/api/things/k1?a=1&b=3",
            "/api/things/k1",
            "/api/things/k2?a=1&b=2",
        ],
        "globex",
    );
}

on_both_hosts!(one_worker_per_gateway_polls_and_an_unchanged_snapshot_is_a_304);
fn one_worker_per_gateway_polls_and_an_unchanged_snapshot_is_a_304(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "purge-poll", filter("gw-poll"));
    let cc = s.control();
    // The first polls fetch the snapshot; after that nothing changes.
    wait_for("the first snapshot poll", Duration::from_secs(30), || {
        (cc.snapshot_polls().0 >= 1).then_some(())
    });
    let (ok0, nm0) = cc.snapshot_polls();
    let at = Instant::now();
    let polls = 10;
    let (ok1, nm1) = wait_for(
        &format!("{polls} more snapshot polls"),
        Duration::from_secs(30),
        || {
            let (ok, nm) = cc.snapshot_polls();
            (ok + nm >= ok0 + nm0 + polls).then_some((ok, nm))
        },
    );
    let took = at.elapsed();
    eprintln!(
        "{} polls in {} ms ({} answered 304), one gateway polling every {POLL_MS} ms",
        ok1 + nm1 - ok0 - nm0,
        took.as_millis(),
        nm1 - nm0
    );
    // Two workers (and Envoy's main thread) all tick, four times per
    // interval; polling each on its own would take a twelfth of this.
    // Polls of one gateway are at least 3/4 of the interval apart, so 10
    // of them span at least 9 × 3/4 intervals.
    assert!(
        took >= Duration::from_millis(9 * POLL_MS * 3 / 4),
        "{polls} polls in {took:?}: more than one poller per {POLL_MS} ms"
    );
    // Unchanged: 304 (the version also moves once a minute).
    assert!(nm1 - nm0 >= polls - 2, "{} of {polls} were 304", nm1 - nm0);
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.accounting.purge_poll_failures",
        |failures| assert_eq!(failures, 0),
    );
}

on_both_hosts!(
    while_cost_control_is_down_hits_go_on_and_a_purge_made_meanwhile_applies_when_it_is_back
);
fn while_cost_control_is_down_hits_go_on_and_a_purge_made_meanwhile_applies_when_it_is_back(
    kind: GatewayKind,
) {
    let mut s = Stack::start_with_control_on(kind, "purge-outage", filter("gw-outage"));
    let paths = ["/api/outage/1", "/api/outage/2?x=1"];
    {
        let gw = Gw::of(&s);
        for p in paths {
            gw.cache("acme", p);
        }
    }

    s.control_mut().stop();
    // A purge made while this gateway cannot reach cost-control: another
    // server over the same store takes it.
    let side = CostControl::start_on_store_of(s.control(), free_port(), &s.dir.join("side"));
    let answer = side.purge("acme", "prefix", "/api/outage");
    assert_eq!(answer["generation"], 1, "{answer}");
    drop(side);
    let gw = Gw::of(&s);
    // cost-control's port now takes each connection and closes it: the
    // filter's polls fail, and each try is an event to wait for.
    let dead = DeadPort::bind(s.ports.control);
    wait_for(
        "the filter's polls to fail twice",
        Duration::from_secs(30),
        || (dead.tries() >= 2).then_some(()),
    );
    // Caches keep serving.
    gw.every_worker_says("HIT", "acme", &paths);
    drop(dead);
    gw.gateway.with_envoy_stat(
        "wasmcustom.cost_optimizer.accounting.purge_poll_failures",
        |failures| assert!(failures >= 2, "{failures} failed polls"),
    );

    s.control_mut().restart();
    let gw = Gw::of(&s);
    let took = gw.wait_for_miss("acme", paths[0], Instant::now());
    eprintln!(
        "purge made during the outage: MISS {} ms after cost-control came back",
        took.as_millis()
    );
    gw.every_worker_says("MISS", "acme", &paths);
}

/// A write's invalidation, seen by the next request on every worker:
/// each worker holds the entry in its own tier (L1) and learns of the bump
/// from the host counter `cost_optimizer.cache.epoch` (or, where the host
/// keeps no value for it, from the shared epoch).
fn a_write_is_seen_on_every_worker(gw: &Gw) {
    let (tenant, path) = ("acme", "/api/items/write-1");
    gw.cache(tenant, path);
    let epoch = || {
        gw.gateway
            .envoy_stat("wasmcustom.cost_optimizer.cache.epoch")
    };
    let before = epoch();
    let (w, worker) = gw
        .gateway
        .probe_worker(gw.listen, "PUT", path, &[("x-tenant-id", tenant)]);
    assert_eq!(w.status, 200, "PUT on worker {worker}: {}", w.text());
    gw.every_worker_says("MISS", tenant, &[path]);
    // Envoy shows the counter (Kong's engine here serves no counters):
    // the write moved it by one, where Envoy keeps it.
    if let (Some(before), Some(after)) = (before, epoch()) {
        if before > 0 {
            assert_eq!(after, before + 1, "the write's bump");
        }
    }
}

on_both_hosts!(a_write_on_one_worker_is_seen_by_the_next_request_on_every_worker);
fn a_write_on_one_worker_is_seen_by_the_next_request_on_every_worker(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "write-workers", filter("gw-write"));
    // On Envoy each VM that configured the filter (the workers', and the
    // main thread's) added 1 when it probed the counter.
    s.with_envoy_stat("wasmcustom.cost_optimizer.cache.epoch", |epoch| {
        assert!(epoch >= WORKERS as u64, "{epoch}")
    });
    a_write_is_seen_on_every_worker(&Gw::of(&s));
}

/// Envoy keeps a stat its `stats_matcher` rejects as a null stat that
/// reads 0: the filter says so and reads the shared epoch on every lookup.
#[test]
fn a_write_is_seen_on_every_worker_when_envoy_rejects_the_filters_counters_envoy_only() {
    let s = Stack::start_yaml_with_control("write-workers-no-stats", |ports, wasm| {
        envoy_config::render(ports, wasm, &filter("gw-no-stats"))
            + "stats_config:\n  stats_matcher:\n    exclusion_list:\n      patterns:\n      - prefix: \"wasmcustom.\"\n"
    });
    let envoy = s.gateway.envoy().expect("an Envoy stack");
    let log = envoy.log_text();
    let configured = log.matches("cost-optimizer configured with").count();
    assert!(configured >= WORKERS, "{log}");
    assert_eq!(
        log.matches("keeps no value for the counter cost_optimizer.cache.epoch")
            .count(),
        configured,
        "every VM that configured the filter falls back: {log}"
    );
    assert_eq!(envoy.stat("wasmcustom.cost_optimizer.cache.epoch"), 0);
    a_write_is_seen_on_every_worker(&Gw::of(&s));
}
