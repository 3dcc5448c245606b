//! Property: under any interleaving of concurrent allowance requests, spend
//! reports against leases and releases, outstanding grants + spend never
//! exceed the limit — checked while the gateways run and at the end, on both
//! stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use common::{Backend, T0};
use cost_control::model::{AllowanceRequest, Budget, SpendBatch, SpendEvent};
use cost_control::Store;
use proptest::prelude::*;

/// One gateway's steps: (want, percent of the grant to spend, release after).
type Plan = Vec<(i64, u8, bool)>;

fn spend(tenant: &str, id: String, cost: i64, lease: Option<String>) -> SpendBatch {
    SpendBatch {
        batch_id: id,
        gateway_id: "gw".into(),
        events: vec![SpendEvent {
            tenant: tenant.into(),
            service: "svc".into(),
            route: "/r".into(),
            provider: "p".into(),
            strategy: "s".into(),
            cost_micros: cost,
            baseline_micros: cost,
            ts_ms: T0,
            allowance_id: lease,
            count: 1,
        }],
    }
}

async fn gateway(store: Arc<dyn Store>, g: usize, plan: Plan, spent: Arc<AtomicI64>) {
    for (i, (want, pct, release)) in plan.into_iter().enumerate() {
        let req = AllowanceRequest {
            gateway_id: format!("gw{g}"),
            tenant: "acme".into(),
            service: "svc".into(),
            want_micros: want,
            ttl_ms: 3_600_000,
        };
        let a = store.grant(req, T0).await.unwrap();
        let Some(lease) = a.allowance_id else {
            continue;
        };
        let total = a.granted_micros * i64::from(pct) / 100;
        let first = total / 2;
        for (n, part) in [(0, first), (1, total - first)] {
            if part > 0 {
                let b = spend("acme", format!("g{g}-s{i}-{n}"), part, Some(lease.clone()));
                store.ingest(b.clone(), T0).await.unwrap();
                // A replay must not count twice.
                assert!(store.ingest(b, T0).await.unwrap().duplicate);
                spent.fetch_add(part, Ordering::SeqCst);
            }
        }
        if release {
            store.release(&lease, T0).await.unwrap();
        }
    }
}

async fn check(store: &Arc<dyn Store>, limit: i64) -> (i64, i64) {
    let st = store.budgets(Some("acme"), T0).await.unwrap();
    let b = &st[0];
    assert!(
        b.daily_spent_micros + b.outstanding_micros <= limit,
        "invariant broken: spend {} + outstanding {} > limit {limit}",
        b.daily_spent_micros,
        b.outstanding_micros
    );
    (b.daily_spent_micros, b.outstanding_micros)
}

async fn scenario(backend: Backend, limit: i64, plans: Vec<Plan>) {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(backend, &dir).await;
    let budget = Budget {
        tenant: "acme".into(),
        service: String::new(),
        daily_limit_micros: Some(limit),
        monthly_limit_micros: None,
        soft_limit_percent: 90,
        utc_offset_minutes: 0,
    };
    store.put_budget(budget, T0).await.unwrap();
    let spent = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let checker = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut checks = 0;
            while !done.load(Ordering::SeqCst) {
                check(&store, limit).await;
                checks += 1;
                tokio::task::yield_now().await;
            }
            checks
        })
    };
    let tasks: Vec<_> = plans
        .into_iter()
        .enumerate()
        .map(|(g, plan)| tokio::spawn(gateway(store.clone(), g, plan, spent.clone())))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    assert!(checker.await.unwrap() >= 1);
    let (final_spent, _) = check(&store, limit).await;
    assert_eq!(
        final_spent,
        spent.load(Ordering::SeqCst),
        "every reported spend counted once"
    );
}

fn plans() -> impl Strategy<Value = Vec<Plan>> {
    prop::collection::vec(
        prop::collection::vec((1i64..4_000, 0u8..=100, any::<bool>()), 1..6),
        2..6,
    )
}

fn run(backend: Backend, limit: i64, plans: Vec<Plan>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(backend, limit, plans));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn grants_plus_spend_never_exceed_limit_on_every_store(limit in 1_000i64..20_000, plans in plans()) {
        for backend in Backend::ALL {
            run(backend, limit, plans.clone());
        }
    }
}
