//! Background refresh (RFC 5861 `stale-while-revalidate`, and early
//! refresh of a fresh entry): the request that won an entry's refresh
//! lease is answered from the entry at once, and the worker's root sends
//! the refresh on its next tick. Not from the request's own context: both
//! hosts drop a context's callouts when its stream ends, and this stream
//! ends at once.
//!
//! The refresh is a `GET` of the same URL with the request's own headers
//! (the key may vary on them) and the entry's validators, sent to the
//! rule's `cache.refresh.target`. Its answer goes through the same storage
//! rules as any upstream answer: `304` refreshes the entry, a storable
//! answer replaces it, anything else leaves it to expire.

use std::collections::HashMap;

use crate::cache::entry::Body;
use crate::cache::request::{entry_validators, CLIENT_CONDITIONALS};
use crate::cache::response::OnHeaders;
use crate::cache::Forward;
use crate::config::RouteCache;
use crate::headers::Headers;
use crate::host::{Callout, Host, Level};

use super::{Filter, Worker};

/// Refreshes a worker queues at most; beyond this a lease winner goes
/// upstream itself, as without background refresh.
pub const MAX_QUEUED: usize = 64;

/// How long past its timeout a refresh's answer is still waited for.
const GRACE_MS: u64 = 1_000;

/// Request headers not copied onto a refresh: hop-by-hop ones and the
/// body's; nor the client's own preconditions ([`CLIENT_CONDITIONALS`]:
/// the refresh has the entry's).
const NOT_COPIED: [&str; 7] = [
    "connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
];

/// A worker's background refreshes.
#[derive(Debug, Default)]
pub struct Refreshes {
    queued: Vec<Forward>,
    /// By callout token, with when to give up on its answer.
    in_flight: HashMap<u32, (u64, Box<Forward>)>,
}

impl Refreshes {
    pub fn has_room(&self) -> bool {
        self.queued.len() + self.in_flight.len() < MAX_QUEUED
    }

    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Queue the refresh a lease winner was answered without.
    pub fn queue(&mut self, mut forward: Box<Forward>) {
        // Refreshed by a GET whatever the request was (a HEAD), with the
        // entry's validators whatever the client sent.
        forward.storable = true;
        forward.conditional = false;
        if let Some(stale) = &forward.stale {
            forward.validators = entry_validators(stale);
        }
        if self.has_room() {
            self.queued.push(*forward);
        }
    }
}

fn rule_of<'a>(filter: &'a Filter, f: &Forward) -> Option<&'a RouteCache> {
    filter.config.routes.get(f.route)?.cache.as_ref()
}

/// Send what is queued (from the root's timer), and forget refreshes
/// whose answer never came (the host should have timed them out; an entry
/// kept here would hold a place in the bounded queue for good).
pub fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    let now = host.now_ms();
    worker
        .cache
        .refreshes
        .in_flight
        .retain(|_, (give_up_ms, _)| *give_up_ms > now);
    let queued = std::mem::take(&mut worker.cache.refreshes.queued);
    for mut f in queued {
        let Some(refresh) = rule_of(filter, &f).and_then(|r| r.refresh.as_ref()) else {
            continue;
        };
        let request = Headers::new(&f.request_headers);
        let authority = refresh
            .authority
            .as_deref()
            .or_else(|| request.get_str(":authority"))
            .unwrap_or(refresh.target.as_str());
        let path = request.get(":path").unwrap_or(b"/");
        let mut headers: Vec<(&str, &[u8])> = vec![
            (":method", b"GET"),
            (":path", path),
            (":authority", authority.as_bytes()),
        ];
        headers.extend(f.request_headers.iter().filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !k.starts_with(':')
                && !NOT_COPIED.contains(&k.as_str())
                && !CLIENT_CONDITIONALS.contains(&k.as_str())
        }));
        headers.extend(f.validators.iter().map(|(k, v)| (*k, v.as_slice())));
        let call = Callout {
            target: &refresh.target,
            headers,
            body: None,
            timeout_ms: refresh.timeout_ms,
        };
        let sent = host.http_call(&call);
        drop(call);
        match sent {
            Ok(token) => {
                filter.counters(f.route).cache.refreshes.add(host, 1);
                f.started_ms = now;
                let give_up = now + refresh.timeout_ms + GRACE_MS;
                worker
                    .cache
                    .refreshes
                    .in_flight
                    .insert(token, (give_up, Box::new(f)));
            }
            Err(e) => host.log(
                Level::Warn,
                &format!("background refresh to {} not sent: {e:?}", refresh.target),
            ),
        }
    }
}

/// The answer to a refresh; `false` when `token` is not one.
pub fn on_callout_response(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    token: u32,
    body_size: usize,
) -> bool {
    let Some((_, mut f)) = worker.cache.refreshes.in_flight.remove(&token) else {
        return false;
    };
    let Some(rule) = rule_of(filter, &f) else {
        return true;
    };
    let counters = filter.counters(f.route).cache;
    let store = &filter.config.cache_store;
    let status = host.callout_status();
    let all = host.callout_response_headers();
    let headers = Headers::new(&all);
    let now = host.now_ms();
    // The refresh went to `refresh.target` directly, past the route's
    // rewrites and the filters after this one: an answer of another
    // status than the entry's (a 404 from an unrewritten path, a 401
    // without the credentials a later filter adds) is not taken for the
    // resource.
    let same_status = f.stale.as_ref().is_some_and(|e| match &e.body {
        Body::Response { status: s, .. } => *s == status,
        Body::Vary { .. } => false,
    });
    if status != 304 && !same_status {
        return true;
    }
    let stored = match f.on_response_headers(rule, &worker.cache, status, &headers, now) {
        OnHeaders::NotModified => {
            let refreshed = f.refresh(rule, store, &mut worker.cache, host, &headers, now);
            if refreshed
                .as_ref()
                .is_some_and(|(_, r)| matches!(r, Ok(Some(_))))
            {
                counters.revalidated.add(host, 1);
            }
            refreshed.map(|(_, r)| r)
        }
        // A failed refresh leaves the entry as it is (to expire, or to be
        // served on error); the lease lapses and a later request retries.
        OnHeaders::ServeStale(_) => None,
        // A body over the rule's bound is not read at all (it could be
        // anything, and the wasm heap is the worker's).
        OnHeaders::Pass { .. }
            if f.is_capturing() && body_size <= rule.max_entry_bytes as usize =>
        {
            let body = if body_size > 0 {
                host.callout_response_body(body_size)
            } else {
                Vec::new()
            };
            f.on_body_chunk(&body);
            Some(f.finish(store, &mut worker.cache, host, now))
        }
        OnHeaders::Pass { .. } => None,
    };
    match stored {
        Some(Ok(Some(report))) => {
            counters.stores.add(host, 1);
            counters.bytes_stored.add(host, report.bytes as i64);
            if report.evicted {
                counters.evictions.add(host, 1);
            }
        }
        Some(Err(e)) => host.log(Level::Warn, &format!("could not store a refresh: {e:?}")),
        _ => {}
    }
    true
}
