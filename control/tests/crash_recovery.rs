//! Process test, on every store: ingest from several clients, `kill -9` the
//! server, restart it on the same store (SQLite file or PostgreSQL schema):
//! every acknowledged batch is there (a replay of its id is a duplicate) and
//! no batch is half-committed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Backend;

const PER_BATCH: usize = 50;

fn start(store: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cost-control"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dev-tokens",
            "--log-level",
            "warn",
        ])
        .args(["--store", store])
        .env_remove("COST_CONTROL_ADMIN_TOKEN")
        .env_remove("COST_CONTROL_GATEWAY_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line}"));
    (child, format!("http://{addr}"))
}

fn batch(id: &str) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let events: Vec<_> = (0..PER_BATCH)
        .map(|i| {
            serde_json::json!({"tenant": "crash", "service": "s", "route": "/r", "provider": "p",
            "strategy": "none", "cost_micros": 1 + i as i64, "baseline_micros": 2, "ts": now})
        })
        .collect();
    serde_json::json!({"batch_id": id, "gateway_id": "g", "events": events})
}

fn post(agent: &ureq::Agent, base: &str, body: &serde_json::Value) -> Option<serde_json::Value> {
    let resp = agent
        .post(&format!("{base}/v1/spend"))
        .header("Authorization", "Bearer gateway-dev-token")
        .send_json(body)
        .ok()?;
    resp.into_body().read_json().ok()
}

#[test]
fn acknowledged_events_survive_kill_9() {
    for backend in Backend::ALL {
        survive_kill_9(backend);
    }
}

fn survive_kill_9(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(backend.spec(&dir));
    let (mut child, base) = start(&db);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (base, acked, stop) = (base.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let id = format!("c{c}-{n}");
                    match post(&agent, &base, &batch(&id)) {
                        Some(v) if v["duplicate"] == false => acked.lock().unwrap().push(id),
                        _ => break, // the server died mid-request: not acknowledged
                    }
                }
            })
        })
        .collect();
    let t = Instant::now();
    while acked.lock().unwrap().len() < 60 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL, while clients are still sending
    child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 60,
        "{backend:?}: only {} batches acknowledged",
        acked.len()
    );

    let (mut child, base) = start(&db);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    for id in &acked {
        let v = post(&agent, &base, &batch(id)).unwrap();
        assert_eq!(
            v["duplicate"], true,
            "{backend:?}: acknowledged batch {id} was lost"
        );
    }
    let report: serde_json::Value = agent
        .get(&format!("{base}/v1/spend?tenant=crash&from=0"))
        .header("Authorization", "Bearer admin-dev-token")
        .call()
        .unwrap()
        .into_body()
        .read_json()
        .unwrap();
    let events = report["total"]["events"].as_u64().unwrap() as usize;
    assert!(
        events >= acked.len() * PER_BATCH,
        "{events} events for {} acked batches",
        acked.len()
    );
    assert_eq!(
        events % PER_BATCH,
        0,
        "{backend:?}: a batch was partly committed"
    );
    let per_batch_cost: i64 = (1..=PER_BATCH as i64).sum();
    assert_eq!(
        report["total"]["cost_micros"].as_i64().unwrap(),
        (events / PER_BATCH) as i64 * per_batch_cost
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
