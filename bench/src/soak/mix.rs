//! What the soak sends and how the filter is configured for it: one rule
//! per strategy (the shape of `envoy/envoy.yaml`), and a request mix
//! drawn from the request's index alone, so any worker can build request
//! `i` without a shared sequence and a run repeats with its seed.
//!
//! Requests come in blocks of [`BLOCK`] indexes. A block is either a
//! burst (its 8 requests are one item GET, sent at the block's time: what
//! coalescing is for) or 8 independent requests drawn from [`SHARES`],
//! each at its own time.

use serde_json::{json, Value};

use crate::rng::{Rng, Zipf};

/// Requests per block, and so per burst.
pub const BLOCK: u64 = 8;
/// Share of blocks that are bursts.
pub const BURST_SHARE: f64 = 0.06;
/// Items (Zipf, s = 1), quotes, search terms, reports, orders.
pub const ITEMS: usize = 10_000;
pub const QUOTES: usize = 10_000;
pub const SEARCHES: usize = 2_000;
pub const REPORTS: usize = 100;
pub const ORDERS: usize = 1_000;
/// Tenants (each has its own ledger, limiter bucket and budget pool).
pub const TENANTS: [&str; 2] = ["soak-a", "soak-b"];
/// The cache's size: shared-data entries the cache can hold.
pub const CACHE_ENTRIES: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// GET of an item: cache and coalescing.
    Item,
    /// PUT of an item: invalidates it.
    Write,
    /// GET of an item in a burst of [`BLOCK`].
    Burst,
    /// GET of a quote: batched.
    Quote,
    /// GET of a search: routed across two providers.
    Search,
    /// GET of a report, with a priority: rate-limited.
    Report,
    /// GET of an order: priced against a budget.
    Order,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Item,
        Kind::Write,
        Kind::Burst,
        Kind::Quote,
        Kind::Search,
        Kind::Report,
        Kind::Order,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Item => "item GET (cache, coalesce)",
            Kind::Write => "item PUT (invalidation)",
            Kind::Burst => "item GET in a burst of 8 (coalesce)",
            Kind::Quote => "quote GET (batch)",
            Kind::Search => "search GET (routing)",
            Kind::Report => "report GET (limit, priorities)",
            Kind::Order => "order GET (budget)",
        }
    }

    /// The path prefix its rule matches (faults are installed by prefix).
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Item | Kind::Write | Kind::Burst => "/api/items/",
            Kind::Quote => "/api/quotes/",
            Kind::Search => "/api/search/",
            Kind::Report => "/api/reports/",
            Kind::Order => "/api/orders/",
        }
    }
}

/// Shares of the requests outside bursts.
pub const SHARES: [(Kind, f64); 6] = [
    (Kind::Item, 0.52),
    (Kind::Write, 0.03),
    (Kind::Quote, 0.15),
    (Kind::Search, 0.13),
    (Kind::Report, 0.09),
    (Kind::Order, 0.08),
];

/// One request of the mix.
#[derive(Debug, Clone, PartialEq)]
pub struct Req {
    pub kind: Kind,
    pub tenant: &'static str,
    /// `high`, `medium` or `low` on reports, else none.
    pub priority: Option<&'static str>,
    /// Path and query.
    pub target: String,
    /// Index of the block's first request when the request belongs to a
    /// burst (all of a burst are due at that index's time).
    pub due_index: u64,
}

impl Req {
    pub fn method(&self) -> &'static str {
        if self.kind == Kind::Write {
            "PUT"
        } else {
            "GET"
        }
    }

    /// The bytes of the request (HTTP/1.1, keep-alive).
    pub fn bytes(&self) -> Vec<u8> {
        let mut r = format!(
            "{} {} HTTP/1.1\r\nhost: soak\r\nx-tenant-id: {}\r\n",
            self.method(),
            self.target,
            self.tenant
        );
        if let Some(p) = self.priority {
            r.push_str(&format!("x-priority: {p}\r\n"));
        }
        if self.kind == Kind::Write {
            let body = r#"{"price":"1.00"}"#;
            r.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            r.push_str("\r\n");
        }
        r.into_bytes()
    }
}

/// The mix of one run: its seed and the Zipf table of the items.
pub struct Mix {
    seed: u64,
    zipf: Zipf,
}

impl Mix {
    pub fn new(seed: u64) -> Mix {
        Mix {
            seed,
            zipf: Zipf::new(ITEMS, 1.0),
        }
    }

    fn rng(&self, salt: u64) -> Rng {
        let mut r = Rng::new(self.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    /// Request `i` of the run.
    pub fn request(&self, i: u64) -> Req {
        let block = i / BLOCK;
        let mut b = self.rng(block.wrapping_mul(2).wrapping_add(1));
        if b.unit() < BURST_SHARE {
            let key = b.below(ITEMS) + 1;
            let tenant = TENANTS[b.below(TENANTS.len())];
            return Req {
                kind: Kind::Burst,
                tenant,
                priority: None,
                target: item_target(key),
                due_index: block * BLOCK,
            };
        }
        let mut r = self.rng(i.wrapping_mul(2));
        let mut u = r.unit();
        let mut kind = Kind::Item;
        for (k, share) in SHARES {
            kind = k;
            if u < share {
                break;
            }
            u -= share;
        }
        let tenant = TENANTS[r.below(TENANTS.len())];
        let (target, priority) = match kind {
            Kind::Item | Kind::Burst => (item_target(self.zipf.sample(&mut r)), None),
            Kind::Write => (format!("/api/items/{}", self.zipf.sample(&mut r)), None),
            Kind::Quote => (
                format!(
                    "/api/quotes/{}?size=256&cache-control=no-store",
                    r.below(QUOTES) + 1
                ),
                None,
            ),
            Kind::Search => (
                format!("/api/search/q{}?size=512", r.below(SEARCHES) + 1),
                None,
            ),
            Kind::Report => {
                let p = ["high", "medium", "low"][r.below(3)];
                (
                    format!(
                        "/api/reports/{}?size=512&cache-control=no-store",
                        r.below(REPORTS) + 1
                    ),
                    Some(p),
                )
            }
            Kind::Order => (
                format!(
                    "/api/orders/{}?size=256&cache-control=no-store",
                    r.below(ORDERS) + 1
                ),
                None,
            ),
        };
        Req {
            kind,
            tenant,
            priority,
            target,
            due_index: i,
        }
    }
}

/// An item GET: 1 KiB, fresh for 60 s (entries expire and come back
/// during the run), 5 ms at the demo API (a burst's requests overlap).
fn item_target(key: usize) -> String {
    format!("/api/items/{key}?size=1024&cache-control=max-age%3D60&delay_ms=5")
}

/// The filter's configuration: one rule per strategy, every rule priced
/// and with `debug_headers` (the soak sums `x-optimizer-cost`), the
/// accounting link to cost-control, a budget on the orders. Routing
/// providers' `addresses` are the e2e harness's cluster names, written as
/// ports by `e2e::envoy_config::render`.
pub fn filter_config() -> Value {
    json!({
        "version": 1,
        "identity": {
            "tenant": [{"header": "x-tenant-id"}],
            "priority_header": {"name": "x-priority", "trusted": true}
        },
        "cache_store": {"max_entries": CACHE_ENTRIES, "ways": 4, "max_entry_bytes": 65536},
        "accounting": {
            "cost_control": "cost_control", "token": "gateway-dev-token",
            "gateway_id": "soak", "flush_ms": 1000, "purge_poll_ms": 1000,
            "budgets": {"lease": "0.50"}
        },
        "routes": [
            {"name": "items", "match": {"prefix": "/api/items/"}, "sla_ms": 1000,
             "debug_headers": true,
             "cache": {"max_ttl_s": 3600, "related_prefixes": ["/api/items/"]},
             "coalesce": {},
             "cost": {"provider": "demo_api", "cost_per_call": "0.002"}},
            {"name": "quotes", "match": {"prefix": "/api/quotes/", "methods": ["GET"]},
             "sla_ms": 2000, "debug_headers": true,
             "batch": {"upstream": "demo_api", "path": "/api/batch", "format": "rest",
                       "window_ms": 50, "max_size": 16, "timeout_ms": 5000},
             "cost": {"provider": "demo_api", "cost_per_call": "0.001",
                      "batch": {"per_batch": "0.001", "per_member": "0.0001"}}},
            {"name": "search", "match": {"prefix": "/api/search/"}, "sla_ms": 2000,
             "debug_headers": true,
             "routing": {"strategy": "cheapest",
                         "providers": [
                           {"name": "primary", "upstream": "via_primary",
                            "addresses": ["demo_api"], "cost": {"cost_per_call": "0.002"}},
                           {"name": "secondary", "upstream": "via_secondary",
                            "addresses": ["demo_api_b"], "cost": {"cost_per_call": "0.001"}}],
                         "breaker": {"failures": 3, "open_s": 2, "probes": 1}},
             "cost": {"provider": "primary", "cost_per_call": "0.002"}},
            {"name": "reports", "match": {"prefix": "/api/reports/"}, "sla_ms": 2000,
             "priority": "medium", "debug_headers": true,
             "limit": {"by": "tenant", "token_bucket": {"capacity": 20, "refill_per_s": 20},
                       "queue_bound": 64},
             "cost": {"provider": "demo_api", "cost_per_call": "0.005"}},
            {"name": "orders", "match": {"prefix": "/api/orders/"}, "sla_ms": 2000,
             "debug_headers": true,
             "cost": {"provider": "demo_api", "cost_per_call": "0.002",
                      "budget": {"on_unavailable": "fail_open", "fail_open_credit": "0.05"}}}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_the_index_and_the_mix() {
        let m = Mix::new(7);
        assert_eq!(m.request(12345), Mix::new(7).request(12345));
        let n = 80_000u64;
        let mut by_kind = std::collections::BTreeMap::new();
        for i in 0..n {
            *by_kind.entry(m.request(i).kind).or_insert(0u64) += 1;
        }
        for k in Kind::ALL {
            assert!(
                by_kind.get(&k).copied().unwrap_or(0) > 0,
                "{k:?} never drawn"
            );
        }
        let burst = by_kind[&Kind::Burst] as f64 / n as f64;
        assert!((0.04..0.08).contains(&burst), "{burst}");
        // A burst is 8 identical requests due at its block's first index.
        let i = (0..n).find(|i| m.request(*i).kind == Kind::Burst).unwrap();
        let first = m.request(i);
        assert_eq!(first.due_index % BLOCK, 0);
        for j in first.due_index..first.due_index + BLOCK {
            assert_eq!(m.request(j), first);
        }
    }

    #[test]
    fn request_bytes() {
        let m = Mix::new(1);
        let w = (0..10_000)
            .map(|i| m.request(i))
            .find(|r| r.kind == Kind::Write)
            .unwrap();
        let b = String::from_utf8(w.bytes()).unwrap();
        assert!(b.starts_with("PUT /api/items/") && b.ends_with("\r\n\r\n{\"price\":\"1.00\"}"));
        let r = (0..10_000)
            .map(|i| m.request(i))
            .find(|r| r.kind == Kind::Report)
            .unwrap();
        assert!(String::from_utf8(r.bytes())
            .unwrap()
            .contains("x-priority: "));
    }
}
