//! The cache stage of the pipeline: glue between the exchange, the host
//! and `crate::cache`. Answers hits, labels forwards, stores answers,
//! applies invalidations.

use std::rc::Rc;

use crate::cache::entry::{Body, Entry};
use crate::cache::generations::Generations;
use crate::cache::request::RequestFacts;
use crate::cache::response::OnHeaders;
use crate::cache::{self, reply, Forward, Fwd, Label, Outcome};
use crate::headers::Headers;
use crate::host::{Host, Level, StreamId, Wake};

use super::machine::Cx;
use super::{Exchange, Filter, Worker};

/// What the cache decided for this exchange.
#[derive(Debug, Default)]
pub enum CacheStep {
    /// The rule has no cache.
    #[default]
    None,
    /// Gone upstream; the answer may be stored.
    Forward(Box<Forward>),
    /// Not cacheable (`fwd` says why).
    Bypass(Fwd),
    /// A write: on success these generation slots are bumped.
    Write(Vec<u32>),
}

/// The cache at request headers; `true` when the request was answered
/// (a hit answers its own stream at once, from borrowed entry bytes: the
/// hot path copies no body).
pub(super) fn on_request<H: Host>(cx: &mut Cx<'_, H>, exchange: &mut Exchange) -> bool {
    let Cx {
        filter,
        worker,
        host,
    } = cx;
    let all = &exchange.request;
    let route = &filter.config.routes[exchange.route];
    let Some(rule) = &route.cache else {
        return false;
    };
    let counters = filter.counters(exchange.route).cache;
    let rand01 = worker.rand01();
    let facts = RequestFacts {
        route: exchange.route,
        tenant: exchange.identity.tenant_or_anonymous(),
        headers: Headers::new(all),
        all_headers: all,
        // The clock was read when the request was identified; one host
        // call per request is enough.
        now_ms: exchange.identity.started_ms,
        rand01,
        lease_ms: (route.sla_ms * 2).max(1000),
    };
    let head = facts.headers.get(":method") == Some(b"HEAD");
    match cache::on_request(
        &filter.config.cache_store,
        rule,
        &mut worker.cache,
        *host,
        facts,
    ) {
        Outcome::Hit { entry, label } => {
            let now = exchange.identity.started_ms;
            let status = reply::hit_status(&entry, now);
            let how = Answer {
                label,
                cache_status: &status,
                head,
                now,
            };
            if answer_from(filter, *host, exchange, &entry, how) {
                match label {
                    Label::Stale => counters.stale.add(*host, 1),
                    _ => counters.hits.add(*host, 1),
                }
                return true;
            }
            true
        }
        Outcome::Forward(f) => {
            counters.misses.add(*host, 1);
            exchange.cache = CacheStep::Forward(f);
            false
        }
        Outcome::Bypass { fwd } => {
            counters.bypass.add(*host, 1);
            exchange.cache = CacheStep::Bypass(fwd);
            false
        }
        Outcome::Write { slots } => {
            exchange.cache = CacheStep::Write(slots);
            false
        }
    }
}

/// How a stored response answers a request.
struct Answer<'a> {
    label: Label,
    cache_status: &'a str,
    /// A HEAD request: headers only.
    head: bool,
    now: u64,
}

/// Send a stored response as the answer to the exchange's own stream.
fn answer_from(
    filter: &Filter,
    host: &mut impl Host,
    exchange: &Exchange,
    entry: &Entry,
    how: Answer<'_>,
) -> bool {
    let Answer {
        label,
        cache_status,
        head,
        now,
    } = how;
    let stream = exchange.stream;
    let Body::Response {
        status,
        headers,
        body,
    } = &entry.body
    else {
        return false;
    };
    let age = reply::age_s(entry, now).to_string();
    let common = exchange.common_headers(filter);
    let id_header = filter.config.identity.request_id_header.as_str();
    let mut out: Vec<(&str, &[u8])> = Vec::with_capacity(headers.len() + 8);
    out.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    out.push(("age", age.as_bytes()));
    out.push(("cache-status", cache_status.as_bytes()));
    out.push(("x-cache", label.as_str().as_bytes()));
    out.push((id_header, exchange.identity.request_id.as_bytes()));
    out.extend(common.iter().map(|(k, v)| (*k, v.as_slice())));
    let body: &[u8] = if head { b"" } else { body };
    let reply = Wake::Reply {
        status: *status,
        headers: &out,
        body,
    };
    match host.wake(stream, reply) {
        Ok(()) => true,
        Err(e) => {
            host.log(
                Level::Warn,
                &format!("[{stream}] could not answer from cache: {e:?}"),
            );
            false
        }
    }
}

/// The cache at response headers (`all`, with its `status`); `true` when
/// the filter answered instead (a stale entry for an upstream error).
pub(super) fn on_response_headers<H: Host>(
    cx: &mut Cx<'_, H>,
    exchange: &mut Exchange,
    all: &[(String, Vec<u8>)],
    status: u16,
    end_of_stream: bool,
) -> bool {
    let (filter, worker, host) = (cx.filter, &mut *cx.worker, &mut *cx.host);
    let stream = exchange.stream;
    let Some(rule) = filter
        .config
        .routes
        .get(exchange.route)
        .and_then(|r| r.cache.as_ref())
    else {
        return false;
    };
    let counters = filter.counters(exchange.route).cache;
    let headers = Headers::new(all);
    let now = host.now_ms();
    let (label, cache_status) = match &mut exchange.cache {
        CacheStep::None => return false,
        CacheStep::Bypass(fwd) => (Label::Bypass, reply::forward_status(*fwd, false)),
        CacheStep::Write(slots) => {
            if (200..300).contains(&status) {
                let bumped =
                    Generations::bump(host, filter.config.cache_store.generation_slots, slots);
                match bumped {
                    Ok(()) => {
                        counters.invalidations.add(host, 1);
                        if let Some(v) = worker.cache.adaptive.get_mut(exchange.route) {
                            v.invalidated();
                        }
                    }
                    Err(e) => host.log(
                        Level::Error,
                        &format!("[{stream}] invalidation failed: {e:?}"),
                    ),
                }
            }
            (Label::Bypass, reply::forward_status(Fwd::Method, false))
        }
        CacheStep::Forward(f) => {
            match f.on_response_headers(rule, &worker.cache, status, &headers, now) {
                OnHeaders::ServeStale(entry) => {
                    let cs = reply::stale_if_error_status(&entry, now, status);
                    let entry: Rc<Entry> = entry;
                    let how = Answer {
                        label: Label::Stale,
                        cache_status: &cs,
                        head: false,
                        now,
                    };
                    if answer_from(filter, host, exchange, &entry, how) {
                        counters.stale.add(host, 1);
                        return true;
                    }
                    return false;
                }
                OnHeaders::Pass { storing } => {
                    let fwd = f.fwd;
                    if end_of_stream {
                        store(filter, worker, host, stream, exchange);
                    }
                    (
                        reply::label_for_fwd(fwd),
                        reply::forward_status(fwd, storing),
                    )
                }
            }
        }
    };
    let _ = host.add_response_header("cache-status", cache_status.as_bytes());
    let _ = host.add_response_header("x-cache", label.as_str().as_bytes());
    false
}

/// Whether the cache is collecting this response's body.
pub(super) fn wants_body(exchange: &Exchange) -> bool {
    matches!(&exchange.cache, CacheStep::Forward(f) if f.is_capturing())
}

pub(super) fn on_response_body(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    exchange: &mut Exchange,
    chunk: &[u8],
    end_of_stream: bool,
) {
    let CacheStep::Forward(f) = &mut exchange.cache else {
        return;
    };
    if !f.is_capturing() {
        return;
    }
    f.on_body_chunk(chunk);
    if end_of_stream {
        store(filter, worker, host, 0, exchange);
    }
}

fn store(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
    exchange: &mut Exchange,
) {
    let CacheStep::Forward(f) = &mut exchange.cache else {
        return;
    };
    let counters = filter.counters(exchange.route).cache;
    let now = host.now_ms();
    match f.finish(&filter.config.cache_store, &mut worker.cache, host, now) {
        Ok(Some(report)) => {
            counters.stores.add(host, 1);
            counters.bytes_stored.add(host, report.bytes as i64);
            if report.evicted {
                counters.evictions.add(host, 1);
            }
        }
        Ok(None) => {}
        Err(e) => host.log(
            Level::Warn,
            &format!("[{stream}] could not store in cache: {e:?}"),
        ),
    }
}
