//! The routing stage (DESIGN.md step 7): pick the provider for a request
//! by the rule's strategy among those whose breaker lets it through, send
//! the request there through the host's own routing, and learn from the
//! answer. The host makes the retries (Envoy's `retry_policy` on the route,
//! nginx's `proxy_next_upstream` on the upstream block); the filter tells
//! Envoy how many a request may have (none for a write without an
//! `Idempotency-Key`) and sees which provider answered in the end.

use crate::config::routing::Routing;
use crate::headers::Headers;
use crate::host::{Host, Level};
use crate::route::breaker::{Claim, Transition};
use crate::route::choose::{self, Candidate};
use crate::route::table;

use super::machine::{Cx, Outcome, Reply};
use super::phase::Served;
use super::{Exchange, Filter};

/// Where the stage sent a request, and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// Index of the chosen provider in the rule's `providers`.
    pub chosen: usize,
    /// `None` when it was pinned, or the health table could not be
    /// reached (then nothing was claimed, so nothing is handed back).
    pub claim: Option<Claim>,
    pub sent_ms: u64,
    /// The provider that answered (set at response headers).
    pub served: Option<usize>,
}

fn routing_of(filter: &Filter, route: usize) -> Option<&Routing> {
    filter.config.routes.get(route)?.routing.as_ref()
}

/// Methods retried by the host; a write only with an `Idempotency-Key`.
fn retryable(headers: &Headers<'_>) -> bool {
    matches!(
        headers.get_str(":method").unwrap_or("GET"),
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE"
    ) || headers.get("idempotency-key").is_some()
}

pub(super) fn on_request<H: Host>(cx: &mut Cx<'_, H>, ex: &mut Exchange) -> Outcome {
    let (filter, host) = (cx.filter, &mut *cx.host);
    let Some(routing) = routing_of(filter, ex.route) else {
        return Outcome::Pass;
    };
    let Some(rule) = filter.config.routes.get(ex.route) else {
        return Outcome::Pass;
    };
    let counters = &filter.counters(ex.route).routing;
    let headers = Headers::new(&ex.request);
    let now = host.now_ms();
    let n = routing.providers.len();
    // A request the gateway pinned to a provider goes there, open or not.
    let pinned = routing
        .pin_header
        .as_deref()
        .and_then(|h| headers.get_str(h))
        .and_then(|v| routing.provider_named(v.trim()));
    let (chosen, claim) = match pinned {
        Some(p) => (p, None),
        None => {
            let health = table::read(host, ex.route, n);
            let candidates: Vec<Candidate> = routing
                .providers
                .iter()
                .map(|p| Candidate {
                    cost_micros: p
                        .cost
                        .as_ref()
                        .or(rule.cost.as_ref())
                        .map_or(0, |c| c.cost_per_call_micros),
                    weight: p.weight,
                })
                .collect();
            let order = choose::order(
                routing.strategy,
                &candidates,
                &health.providers,
                rule.sla_ms,
                cx.worker.rand01(),
            );
            match table::pick_with_transition(host, ex.route, n, &order, now, &routing.breaker) {
                Ok(Some((i, claim, t))) => {
                    if t == Transition::HalfOpened {
                        if let Some(c) = counters.providers.get(i) {
                            c.half_opened.add(host, 1);
                        }
                        let name = routing.providers.get(i).map_or("?", |p| p.name.as_str());
                        host.log(
                            Level::Info,
                            &format!("provider {name}: circuit breaker half-open (probing)"),
                        );
                    }
                    (i, Some(claim))
                }
                Ok(None) => {
                    counters.unavailable.add(host, 1);
                    return Outcome::Answer(unavailable(ex, filter), Served::Refused);
                }
                Err(e) => {
                    host.log(
                        Level::Warn,
                        &format!(
                            "[{}] provider health unreadable ({e:?}): first choice",
                            ex.stream
                        ),
                    );
                    (order.first().copied().unwrap_or(0), None)
                }
            }
        }
    };
    let Some(provider) = routing.providers.get(chosen) else {
        return Outcome::Pass;
    };
    let retries = if retryable(&headers) {
        routing.max_attempts.saturating_sub(1)
    } else {
        0
    };
    if let Err(e) = host.route_to(
        &provider.upstream,
        &routing.header,
        &routing.kong_property,
        retries,
    ) {
        host.log(
            Level::Warn,
            &format!(
                "[{}] could not route to {}: {e:?}",
                ex.stream, provider.name
            ),
        );
    }
    if let Some(c) = counters.providers.get(chosen) {
        c.routed.add(host, 1);
    }
    ex.routed = Some(Routed {
        chosen,
        claim,
        sent_ms: now,
        served: None,
    });
    Outcome::Pass
}

/// Every provider's breaker is open: a clear answer at once, no retries.
fn unavailable(ex: &Exchange, filter: &Filter) -> Reply {
    let mut own = ex.own_headers(filter);
    own.push((
        "x-optimizer-warning".into(),
        b"no provider available (every circuit breaker is open)".to_vec(),
    ));
    Reply::json(
        503,
        &[("retry-after", b"1")],
        own,
        br#"{"error":"unavailable","message":"every provider of this route is failing; try again shortly"}"#,
    )
}

/// The answer's headers: which provider answered (the host may have
/// failed over), each provider's result into its health, and the
/// `x-optimizer-provider` header.
pub(super) fn on_response_headers(
    filter: &Filter,
    host: &mut impl Host,
    ex: &mut Exchange,
    status: u16,
) {
    let Some(routing) = routing_of(filter, ex.route) else {
        return;
    };
    let Some(routed) = ex.routed.as_mut() else {
        return;
    };
    if routed.served.is_some() {
        return;
    }
    let counters = &filter.counters(ex.route).routing;
    let now = host.now_ms();
    let latency = now.saturating_sub(routed.sent_ms);
    let served = host
        .upstream_peer()
        .and_then(|a| routing.provider_at(&a))
        .unwrap_or(routed.chosen);
    routed.served = Some(served);
    let ok = (1..500).contains(&status);
    let n = routing.providers.len();
    let cfg = &routing.breaker;
    let mut results = vec![(routed.chosen, served == routed.chosen && ok, routed.claim)];
    if served != routed.chosen {
        // The host retried elsewhere: the chosen provider failed.
        counters.failovers.add(host, 1);
        results.push((served, ok, Some(Claim::Normal)));
    }
    for (provider, ok, claim) in results {
        let Some(claim) = claim else { continue };
        let t = table::record(host, ex.route, n, provider, ok, latency, claim, now, cfg);
        let c = counters
            .providers
            .get(provider)
            .copied()
            .unwrap_or_default();
        if !ok {
            c.failures.add(host, 1);
        }
        let name = routing
            .providers
            .get(provider)
            .map_or("?", |p| p.name.as_str());
        match t {
            Ok(Transition::Opened) | Ok(Transition::Reopened) => {
                c.opened.add(host, 1);
                host.log(
                    Level::Warn,
                    &format!("provider {name}: circuit breaker open"),
                );
            }
            Ok(Transition::Closed) => {
                c.closed.add(host, 1);
                host.log(
                    Level::Info,
                    &format!("provider {name}: circuit breaker closed"),
                );
            }
            Ok(_) => {}
            Err(e) => host.log(
                Level::Warn,
                &format!("provider {name}: health not recorded: {e:?}"),
            ),
        }
    }
    if let Some(c) = counters.providers.get(served) {
        c.served.add(host, 1);
    }
    if let Some(p) = routing.providers.get(served) {
        let _ = host.add_response_header("x-optimizer-provider", p.name.as_bytes());
    }
}
