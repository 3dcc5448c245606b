//! The per-request pipeline (DESIGN.md "What it does to a request") as a
//! state machine over [`Host`]. The wasm HTTP context keeps one
//! `Option<Exchange>` and hands each hook to it; one hook is one transition.
//!
//! Stages so far: identify. Later stages (cache, coalesce, limit, batch,
//! route, account) slot in between `on_request_headers` and the response.

use crate::config::Config;
use crate::headers::Headers;
use crate::host::{Host, Level, StreamId};
use crate::identity::{self, Identity};
use crate::metrics::Metrics;
use crate::request_id::RequestIds;
use crate::routes;

/// What the host should do with the stream after a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next filter.
    Continue,
    /// Hold the stream: the filter answered it locally, or will resume it.
    Pause,
}

/// The immutable part of a configured filter, shared by all streams of a
/// worker: the checked config and the metric ids.
#[derive(Debug)]
pub struct Filter {
    pub config: Config,
    pub metrics: Metrics,
}

impl Filter {
    pub fn new(config: Config, host: &mut impl Host) -> Self {
        let metrics = Metrics::define(&config, host);
        Filter { config, metrics }
    }
}

/// Mutable per-worker state (one per VM; no locking needed, a worker is one
/// thread).
#[derive(Debug)]
pub struct Worker {
    pub ids: RequestIds,
}

impl Worker {
    pub fn new(host: &mut impl Host) -> Self {
        let seed = [
            host.random_u64(),
            host.random_u64(),
            host.random_u64(),
            host.random_u64() ^ host.now_ms(),
        ];
        Worker {
            ids: RequestIds::new(seed),
        }
    }
}

/// A matched request on its way through the pipeline.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub route: usize,
    pub identity: Identity,
}

/// First hook of a request. `None` means no rule matched: the filter has
/// not touched the request and will not touch its response.
pub fn on_request_headers(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
) -> (Verdict, Option<Exchange>) {
    let routes = &filter.config.routes;
    // One cheap host call decides most unmatched traffic.
    let Some(path) = host.request_header(":path") else {
        return (Verdict::Continue, None);
    };
    if !routes::any_prefix_matches(routes, &path) {
        return (Verdict::Continue, None);
    }
    let all = host.request_headers();
    let headers = Headers::new(&all);
    let method = headers.get(":method").unwrap_or_default();
    let authority = headers.get(":authority").unwrap_or_default();
    let Some(index) = routes::first_match(routes, &path, method, authority) else {
        return (Verdict::Continue, None);
    };
    let route = &routes[index];
    let counters = filter
        .metrics
        .routes
        .get(index)
        .cloned()
        .unwrap_or_default();
    counters.requests.add(host, 1);

    let identity = identity::identify(
        &filter.config.identity,
        route,
        &headers,
        host,
        &mut worker.ids,
    );
    let exchange = Exchange {
        route: index,
        identity,
    };

    if route.require_tenant && exchange.identity.tenant.is_none() {
        counters.unauthenticated.add(host, 1);
        let id = exchange.identity.request_id.as_bytes();
        let sent = host.send_reply(
            stream,
            401,
            &[
                ("content-type", b"application/json"),
                (filter.config.identity.request_id_header.as_str(), id),
            ],
            br#"{"error":"unauthenticated","message":"this route requires a tenant identity"}"#,
        );
        if let Err(e) = sent {
            host.log(
                Level::Warn,
                &format!("[{stream}] could not send 401: {e:?}"),
            );
        }
        return (Verdict::Pause, None);
    }

    if exchange.identity.request_id_generated {
        let header = filter.config.identity.request_id_header.as_str();
        if let Err(e) =
            host.set_request_header(header, Some(exchange.identity.request_id.as_bytes()))
        {
            host.log(
                Level::Warn,
                &format!("[{stream}] could not set {header}: {e:?}"),
            );
        }
    }
    (Verdict::Continue, Some(exchange))
}

impl Exchange {
    /// Response headers from upstream: echo the request id, and explain the
    /// decision when the rule asks for debug headers.
    pub fn on_response_headers(&self, filter: &Filter, host: &mut impl Host) -> Verdict {
        let id_header = filter.config.identity.request_id_header.as_str();
        let _ = host.add_response_header(id_header, self.identity.request_id.as_bytes());
        let Some(route) = filter.config.routes.get(self.route) else {
            return Verdict::Continue;
        };
        if route.debug_headers {
            let id = &self.identity;
            let _ = host.add_response_header("x-optimizer-route", route.name.as_bytes());
            let _ =
                host.add_response_header("x-optimizer-tenant", id.tenant_or_anonymous().as_bytes());
            if let Some(service) = &id.service {
                let _ = host.add_response_header("x-optimizer-service", service.as_bytes());
            }
            let _ =
                host.add_response_header("x-optimizer-priority", id.priority.as_str().as_bytes());
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests;
