use super::*;
use crate::config::parse;
use crate::mem_host::MemHost;

const CFG: &str = r#"{"version":1,"routes":[
  {"name":"items","match":{"prefix":"/api/items/"},"debug_headers":true,"priority":"low"},
  {"name":"secure","match":{"prefix":"/api/secure/"},"require_tenant":true}]}"#;

fn setup(host: &mut MemHost) -> (Filter, Worker) {
    let filter = Filter::new(parse(CFG.as_bytes()).unwrap(), host);
    let worker = Worker::new(&filter.config, host);
    (filter, worker)
}

#[test]
fn unmatched_request_is_untouched() {
    let mut host = MemHost::get("/other").with_header("x-tenant-id", "acme");
    let before = host.request_headers.clone();
    let (filter, mut worker) = setup(&mut host);
    let verdict = on_request_headers(&filter, &mut worker, &mut host, 1);
    assert_eq!(verdict, Verdict::Continue);
    assert!(worker.requests.is_empty());
    assert_eq!(host.request_headers, before);
    assert!(host.replies.is_empty());
    assert_eq!(host.counter("cost_optimizer.route.items.requests"), 0);
}

#[test]
fn matched_request_gets_id_upstream_and_on_response() {
    let mut host = MemHost::get("/api/items/1").with_header("x-tenant-id", "acme");
    let (filter, mut worker) = setup(&mut host);
    let verdict = on_request_headers(&filter, &mut worker, &mut host, 1);
    assert_eq!(verdict, Verdict::Continue);
    let id = host.request_header_str("x-request-id").unwrap().to_string();
    assert_eq!(id, worker.requests[&1].identity.request_id);
    assert_eq!(worker.requests[&1].phase, Phase::Upstream);
    assert_eq!(
        on_response_headers(&filter, &mut worker, &mut host, 1, false),
        Verdict::Continue
    );
    assert_eq!(host.response_header("x-request-id"), Some(id.as_str()));
    assert_eq!(host.response_header("x-optimizer-tenant"), Some("acme"));
    assert_eq!(host.response_header("x-optimizer-priority"), Some("low"));
    assert_eq!(host.response_header("x-optimizer-route"), Some("items"));
    assert_eq!(host.counter("cost_optimizer.route.items.requests"), 1);
}

#[test]
fn sent_request_id_is_kept_and_not_rewritten() {
    let mut host = MemHost::get("/api/items/1").with_header("x-request-id", "client-1");
    let (filter, mut worker) = setup(&mut host);
    on_request_headers(&filter, &mut worker, &mut host, 1);
    assert_eq!(worker.requests[&1].identity.request_id, "client-1");
    let ids: Vec<_> = host
        .request_headers
        .iter()
        .filter(|(k, _)| k == "x-request-id")
        .collect();
    assert_eq!(ids.len(), 1);
}

#[test]
fn require_tenant_answers_401_without_going_upstream() {
    let mut host = MemHost::get("/api/secure/1");
    let (filter, mut worker) = setup(&mut host);
    let verdict = on_request_headers(&filter, &mut worker, &mut host, 5);
    assert_eq!(verdict, Verdict::Pause);
    assert!(worker.requests.is_empty());
    let reply = &host.replies[0];
    assert_eq!((reply.stream, reply.status), (5, 401));
    assert!(reply.header("x-request-id").is_some());
    assert!(String::from_utf8_lossy(&reply.body).contains("unauthenticated"));
    assert_eq!(
        host.counter("cost_optimizer.route.secure.unauthenticated"),
        1
    );

    let mut host = MemHost::get("/api/secure/1").with_header("x-tenant-id", "acme");
    let (filter, mut worker) = setup(&mut host);
    let verdict = on_request_headers(&filter, &mut worker, &mut host, 6);
    assert_eq!(verdict, Verdict::Continue);
    assert!(worker.requests.contains_key(&6) && host.replies.is_empty());
}

#[test]
fn request_without_path_passes() {
    let mut host = MemHost::new().with_header(":method", "GET");
    let (filter, mut worker) = setup(&mut host);
    let verdict = on_request_headers(&filter, &mut worker, &mut host, 1);
    assert_eq!(
        (verdict, worker.requests.is_empty()),
        (Verdict::Continue, true)
    );
}

#[test]
fn workers_seeded_differently_generate_different_ids() {
    let mut a = MemHost::new().seed(1);
    let mut b = MemHost::new().seed(2);
    let cfg = parse(CFG.as_bytes()).unwrap();
    let mut wa = Worker::new(&cfg, &mut a);
    let mut wb = Worker::new(&cfg, &mut b);
    assert_ne!(wa.ids.next_id(), wb.ids.next_id());
}

/// A request carrying a header applications trust for links or routing
/// (`X-Forwarded-Host`) shares no answer: no cache lookup or store, and it
/// neither leads nor follows identical requests in flight (issue 19: web
/// cache poisoning through headers the key leaves out).
#[test]
fn a_request_with_a_bypass_header_shares_no_answer() {
    for (routes, name) in [
        (
            r#"{"name":"c","match":{"prefix":"/api/"},"cache":{},"coalesce":{}}"#,
            "cache and coalesce",
        ),
        (
            r#"{"name":"c","match":{"prefix":"/api/"},"coalesce":{}}"#,
            "coalesce only",
        ),
    ] {
        let cfg = format!(r#"{{"version":1,"routes":[{routes}]}}"#);
        let mut host = MemHost::get("/api/items/1")
            .with_header("x-tenant-id", "acme")
            .with_header("X-Forwarded-Host", "evil.example");
        let filter = Filter::new(parse(cfg.as_bytes()).unwrap(), &mut host);
        filter.create_tables(&mut host).unwrap();
        let mut worker = Worker::new(&filter.config, &mut host);
        assert_eq!(
            on_request_headers(&filter, &mut worker, &mut host, 1),
            Verdict::Continue,
            "{name}"
        );
        let attacker = &worker.requests[&1];
        assert!(
            matches!(attacker.cache, CacheStep::None | CacheStep::Bypass(_)),
            "{name}: {:?}",
            attacker.cache
        );
        assert!(matches!(attacker.coalesce, CoalesceStep::None), "{name}");
        // The same URL without the header, while the first is in flight:
        // it leads its own call instead of waiting for the attacker's.
        host.request_headers
            .retain(|(k, _)| k != "X-Forwarded-Host");
        assert_eq!(
            on_request_headers(&filter, &mut worker, &mut host, 2),
            Verdict::Continue,
            "{name}"
        );
        assert!(
            matches!(worker.requests[&2].coalesce, CoalesceStep::Leader(_)),
            "{name}"
        );
    }
    let empty = r#"{"version":1,"shared_answers":{"bypass_headers":[]},"routes":[]}"#;
    assert!(parse(empty.as_bytes()).unwrap().bypass_headers.is_empty());
    let bad = r#"{"version":1,"shared_answers":{"bypass_headers":["x-ok","bad name"]}}"#;
    let e = parse(bad.as_bytes()).unwrap_err();
    assert_eq!(e.field, "shared_answers.bypass_headers[1]", "{e}");
    let default = parse(br#"{"version":1}"#).unwrap();
    assert!(default
        .bypass_headers
        .iter()
        .any(|h| h == "x-forwarded-host"));
    assert!(!default
        .bypass_headers
        .iter()
        .any(|h| h == "x-forwarded-proto"));
}
