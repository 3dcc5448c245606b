//! The cache stage of the pipeline: glue between the exchange, the host
//! and `crate::cache`. Answers hits, labels forwards, stores answers,
//! applies invalidations.

use crate::cache::entry::{Body, Entry};
use crate::cache::generations::Generations;
use crate::cache::reply::Form;
use crate::cache::request::location_slots;
use crate::cache::request::RequestFacts;
use crate::cache::response::OnHeaders;
use crate::cache::{self, conditional, range, reply, Forward, Fwd, Label, Outcome};
use crate::header_list::HeaderList;
use crate::headers::Headers;
use crate::host::{Host, Level, StreamId, Wake};

use super::machine::Cx;
use super::phase::Served;
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
    /// A write: on success these generation slots are bumped, and those
    /// of the URIs its answer names on this `authority`.
    Write { slots: Vec<u32>, authority: String },
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
    let Some(route) = filter.config.routes.get(exchange.route) else {
        return false;
    };
    let Some(rule) = &route.cache else {
        return false;
    };
    let counters = filter.counters(exchange.route).cache;
    // A prompt rule's POST is keyed by its body, or not shared at all.
    let prompt = match (&route.prompt, &exchange.prompt) {
        (Some(_), Some(p)) if p.shareable => Some(p.digest.as_str()),
        (Some(_), _) if Headers::new(all).get(":method") == Some(b"POST") => {
            counters.bypass.add(*host, 1);
            exchange.cache = CacheStep::Bypass(crate::cache::Fwd::Bypass);
            return false;
        }
        _ => None,
    };
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
        background: worker.cache.refreshes.has_room(),
        unshared: filter.config.bypasses_sharing(all),
        prompt,
        epoch_hint: filter.metrics.cache_epoch,
    };
    let head = facts.headers.get(":method") == Some(b"HEAD");
    match cache::on_request(
        &filter.config.cache_store,
        rule,
        &mut worker.cache,
        *host,
        facts,
    ) {
        Outcome::Hit {
            entry,
            label,
            refresh,
        } => {
            if let Some(f) = refresh {
                worker.cache.refreshes.queue(f);
                super::timer::set_tick(filter, worker, *host);
            }
            let now = exchange.identity.started_ms;
            let status = reply::hit_status(&entry, now);
            let how = Answer {
                label,
                cache_status: &status,
                head,
                now,
                form: reply::form(&entry, &Headers::new(&exchange.request), now),
            };
            if let Body::Response { body, .. } = &entry.body {
                super::account_stage::note_answer(filter, exchange, body);
            }
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
            // Revalidate the stale entry (RFC 9111 §4.3.1): a `304` then
            // refreshes it instead of sending the whole body again.
            for (name, value) in &f.validators {
                if let Err(e) = host.set_request_header(name, Some(value)) {
                    host.log(
                        Level::Warn,
                        &format!("[{}] could not add {name}: {e:?}", exchange.stream),
                    );
                }
            }
            exchange.cache = CacheStep::Forward(f);
            false
        }
        Outcome::Bypass { fwd } => {
            counters.bypass.add(*host, 1);
            exchange.cache = CacheStep::Bypass(fwd);
            false
        }
        Outcome::Write { slots } => {
            let authority = Headers::new(&exchange.request)
                .get_str(":authority")
                .unwrap_or_default()
                .to_string();
            exchange.cache = CacheStep::Write { slots, authority };
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
    /// Whole, `304`, or a range of it.
    form: Form,
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
        form,
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
    let id_header = filter.config.identity.request_id_header.as_str();
    let mut out: Vec<(&str, &[u8])> = Vec::with_capacity(headers.len() + 9);
    let (status, body, content_range): (u16, &[u8], Option<String>) = match form {
        Form::Whole => (*status, body, None),
        Form::NotModified => (304, b"", None),
        Form::Part { start, end, len } => (
            206,
            body.get(start as usize..=end as usize).unwrap_or_default(),
            Some(range::content_range(start, end, len)),
        ),
        Form::Unsatisfiable { len } => (416, b"", Some(range::unsatisfied_range(len))),
    };
    let kept =
        |k: &str| form != Form::NotModified || conditional::NOT_MODIFIED_HEADERS.contains(&k);
    // A part's type is the whole's; its length is the host's to set.
    out.extend(
        headers
            .iter()
            .filter(|(k, _)| kept(k))
            .map(|(k, v)| (k.as_str(), v.as_slice())),
    );
    if let Some(cr) = &content_range {
        out.push(("content-range", cr.as_bytes()));
    }
    out.push(("age", age.as_bytes()));
    out.push(("cache-status", cache_status.as_bytes()));
    out.push(("x-cache", label.as_str().as_bytes()));
    out.push((id_header, exchange.identity.request_id.as_bytes()));
    exchange.each_common_header(filter, &mut |k, v| out.push((k, v)));
    let body: &[u8] = if head { b"" } else { body };
    let reply = Wake::Reply {
        status,
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

/// The cache at response headers (`all`, with its `status`); `Some` when
/// the filter answered instead: a stale entry for an upstream error, or
/// the entry the upstream's `304` confirmed.
pub(super) fn on_response_headers<H: Host>(
    cx: &mut Cx<'_, H>,
    exchange: &mut Exchange,
    all: &HeaderList,
    status: u16,
    end_of_stream: bool,
) -> Option<Served> {
    let (filter, worker, host) = (cx.filter, &mut *cx.worker, &mut *cx.host);
    let stream = exchange.stream;
    let rule = filter
        .config
        .routes
        .get(exchange.route)
        .and_then(|r| r.cache.as_ref())?;
    let counters = filter.counters(exchange.route).cache;
    let headers = Headers::new(all);
    let now = host.now_ms();
    let (label, cache_status) = match &mut exchange.cache {
        CacheStep::None => return None,
        CacheStep::Bypass(fwd) => (Label::Bypass, reply::forward_status(*fwd, false)),
        CacheStep::Write { slots, authority } => {
            // Any non-error answer to an unsafe method invalidates
            // (RFC 9111 §4.4): the target URI, the rule's related
            // prefixes, and what `location` / `content-location` name.
            if (200..400).contains(&status) {
                let n = filter.config.cache_store.generation_slots;
                let named: Vec<&str> = ["location", "content-location"]
                    .iter()
                    .filter_map(|h| headers.get_str(h))
                    .collect();
                let tenant = exchange.identity.tenant_or_anonymous();
                slots.extend(location_slots(rule, tenant, authority, &named, n));
                let bumped = Generations::bump(host, n, slots, filter.metrics.cache_epoch);
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
                    let cs = reply::stale_if_error_status(&entry, now, f.fwd, status);
                    let request = Headers::new(&f.request_headers);
                    let how = Answer {
                        label: Label::Stale,
                        cache_status: &cs,
                        head: request.get(":method") == Some(b"HEAD"),
                        now,
                        form: reply::form(&entry, &request, now),
                    };
                    if answer_from(filter, host, exchange, &entry, how) {
                        counters.stale.add(host, 1);
                        return Some(Served::StaleOnError);
                    }
                    return None;
                }
                OnHeaders::NotModified => {
                    let store = &filter.config.cache_store;
                    let (entry, stored) =
                        f.refresh(rule, store, &mut worker.cache, host, &headers, now)?;
                    let stored = match stored {
                        Ok(Some(report)) => {
                            counters.stores.add(host, 1);
                            if report.evicted {
                                counters.evictions.add(host, 1);
                            }
                            true
                        }
                        Ok(None) => false,
                        Err(e) => {
                            host.log(
                                Level::Warn,
                                &format!("[{stream}] could not store the refreshed entry: {e:?}"),
                            );
                            false
                        }
                    };
                    let cs = reply::revalidated_status(f.fwd, stored);
                    let request_headers = std::mem::take(&mut f.request_headers);
                    let request = Headers::new(&request_headers);
                    let how = Answer {
                        label: Label::Hit,
                        cache_status: &cs,
                        head: request.get(":method") == Some(b"HEAD"),
                        now,
                        form: reply::form(&entry, &request, now),
                    };
                    if answer_from(filter, host, exchange, &entry, how) {
                        counters.revalidated.add(host, 1);
                        return Some(Served::Revalidated);
                    }
                    return None;
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
    None
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
