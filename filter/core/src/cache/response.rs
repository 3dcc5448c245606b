//! The cache at response time: serve stale on upstream error, decide
//! whether to store, collect the body as it streams (never holding it
//! back), and store it when the stream ends.

use std::rc::Rc;

use crate::config::{RouteCache, Store};
use crate::header_list::HeaderList;
use crate::headers::Headers;
use crate::host::{Host, HostError};

use super::conditional;
use super::control::{self, Freshness, Policy, ResponseFacts};
use super::entry::{Body, Entry};
use super::generations::{slot, Scope};
use super::http_date;
use super::reply::storable_header;
use super::request::Forward;
use super::{l2, CacheState};

/// A response being collected for storage.
#[derive(Debug)]
pub struct Capture {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    limit: usize,
    fresh: Freshness,
    initial_age_s: u64,
    vary: Vec<String>,
    tags: Vec<String>,
}

/// What to do with the upstream's response headers.
#[derive(Debug)]
pub enum OnHeaders {
    /// Answer with this stale entry instead (stale-if-error).
    ServeStale(Rc<Entry>),
    /// The upstream confirmed the stale entry (`304` to the cache's own
    /// conditional request): refresh it ([`Forward::refresh`]) and answer
    /// from it.
    NotModified,
    /// Pass it on; `storing` tells whether it will be stored (known now
    /// when the length is known).
    Pass { storing: bool },
}

/// The entry to answer with after a `304`, and what storing it did.
pub type Refreshed = (Rc<Entry>, Result<Option<StoreReport>, HostError>);

/// What storing did, for metrics, and the entry stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReport {
    pub bytes: usize,
    pub evicted: bool,
    pub entry: Rc<Entry>,
}

fn header_values<'a>(headers: &Headers<'a>, name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .collect()
}

fn split_list(values: &[&str], by_space: bool) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(|c: char| c == ',' || (by_space && c == ' ')))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The headers a stored response keeps: not hop-by-hop, not per
/// exchange, not named by its `connection` field (RFC 9111 §3.1), names
/// lowercase; a `date` added when the origin sent none (RFC 9110 §6.6.1:
/// a recipient with a clock adds it).
fn stored_headers(headers: &Headers<'_>, now_ms: u64) -> Vec<(String, Vec<u8>)> {
    let named = split_list(&header_values(headers, "connection"), false);
    let mut out: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(k, _)| storable_header(k))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec()))
        .filter(|(k, _)| !named.contains(k))
        .collect();
    if !out.iter().any(|(k, _)| k == "date") {
        out.push(("date".into(), http_date::format_imf(now_ms).into_bytes()));
    }
    out
}

/// The stored headers updated by a `304`'s (RFC 9111 §3.2): each field the
/// `304` carries replaces the stored field of that name; a `304` without
/// `date` gets one of now, like any response.
fn merged_headers(
    stored: &[(String, Vec<u8>)],
    not_modified: &Headers<'_>,
    now_ms: u64,
) -> Vec<(String, Vec<u8>)> {
    let update = stored_headers(not_modified, now_ms);
    let mut out: Vec<(String, Vec<u8>)> = stored
        .iter()
        .filter(|(k, _)| !update.iter().any(|(u, _)| u == k))
        .cloned()
        .collect();
    out.extend(update);
    out
}

/// Cache tags an entry records at most (the rest are not purgeable).
pub const MAX_TAGS: usize = 32;

/// Whether a `304` is about the stored response (RFC 9111 §4.3.4): its
/// `etag`, if it has one, matches the stored one (weak comparison); else
/// its `last-modified`, if both have one, is the stored one.
fn selects(stored: &Entry, not_modified: &Headers<'_>) -> bool {
    if let Some(etag) = not_modified.get_str("etag") {
        return stored
            .header("etag")
            .is_some_and(|s| conditional::weak_match(s, etag));
    }
    match (
        not_modified.get_str("last-modified"),
        stored.header("last-modified"),
    ) {
        (Some(new), Some(old)) => new.trim() == old.trim(),
        _ => true,
    }
}

impl Forward {
    pub fn on_response_headers(
        &mut self,
        rule: &RouteCache,
        state: &CacheState,
        status: u16,
        headers: &Headers<'_>,
        now_ms: u64,
    ) -> OnHeaders {
        if status >= 500 {
            if let Some(stale) = &self.stale {
                if now_ms < stale.sie_until_ms {
                    return OnHeaders::ServeStale(stale.clone());
                }
            }
        }
        if status == 304 && !self.validators.is_empty() && self.stale.is_some() {
            return OnHeaders::NotModified;
        }
        if !self.storable {
            return OnHeaders::Pass { storing: false };
        }
        let limit = rule.max_entry_bytes as usize;
        let length: Option<usize> = headers
            .get_str("content-length")
            .and_then(|v| v.trim().parse().ok());
        if length.is_some_and(|l| l > limit) {
            return OnHeaders::Pass { storing: false };
        }
        if self.conditional && status != 200 {
            return OnHeaders::Pass { storing: false };
        }
        let age = control::age_value(headers);
        let Some(mut capture) = self.assess(rule, state, status, headers, age, now_ms) else {
            return OnHeaders::Pass { storing: false };
        };
        capture.limit = limit;
        capture.body = Vec::with_capacity(length.unwrap_or(0).min(limit));
        self.capture = Some(capture);
        OnHeaders::Pass {
            storing: length.is_some(),
        }
    }

    /// Whether a response with these headers (and this `Age`) may be
    /// stored, and how.
    fn assess(
        &self,
        rule: &RouteCache,
        state: &CacheState,
        status: u16,
        headers: &Headers<'_>,
        age: Option<u64>,
        now_ms: u64,
    ) -> Option<Capture> {
        if headers.get("set-cookie").is_some() {
            return None;
        }
        let vary = split_list(&header_values(headers, "vary"), false);
        if vary.iter().any(|v| v == "*") {
            return None;
        }
        let d = control::response_directives(headers, &rule.targeted_fields);
        let date = headers.get_str("date");
        let age_s = control::initial_age_s(
            age,
            date.and_then(|v| http_date::parse_ms(v, now_ms)),
            self.started_ms,
            now_ms,
        );
        let adaptive = rule.adaptive_ttl_ms.map(|b| {
            state
                .adaptive
                .get(self.route)
                .copied()
                .unwrap_or_default()
                .ttl_ms(b)
        });
        let facts = ResponseFacts {
            status,
            directives: &d,
            expires: headers.get_str("expires"),
            date,
            last_modified: headers.get_str("last-modified"),
            has_validator: headers.get("etag").is_some() || headers.get("last-modified").is_some(),
            age_s,
        };
        let policy = Policy {
            statuses: &rule.statuses,
            default_ttl_ms: adaptive.or(rule.default_ttl_ms),
            max_ttl_ms: rule.max_ttl_ms,
            heuristic_fraction: rule.heuristic_fraction,
            authorization: self.authorization,
        };
        let mut fresh = if self.prompt {
            // A prompt's answer: the rule's lifetime, only `no-store` (or
            // a failure) keeps it out.
            if status != 200 || d.no_store {
                return None;
            }
            control::Freshness {
                ttl_ms: rule.default_ttl_ms?.min(rule.max_ttl_ms),
                stale_while_revalidate_ms: 0,
                stale_if_error_ms: 0,
                keep_ms: 0,
            }
        } else {
            control::storable(facts, policy, now_ms)?
        };
        if let Some(a) = adaptive {
            fresh.ttl_ms = fresh.ttl_ms.min(a.max(1));
        }
        Some(Capture {
            status,
            headers: stored_headers(headers, now_ms),
            body: Vec::new(),
            limit: rule.max_entry_bytes as usize,
            fresh,
            initial_age_s: age_s,
            vary,
            tags: {
                let mut tags = split_list(
                    &[
                        header_values(headers, "cache-tag"),
                        header_values(headers, "surrogate-key"),
                    ]
                    .concat(),
                    true,
                );
                tags.sort_unstable();
                tags.dedup();
                // Every hit checks every tag's counter: a bound keeps an
                // answer with thousands of tags from costing every hit.
                tags.truncate(MAX_TAGS);
                tags
            },
        })
    }

    /// The upstream answered the cache's conditional request with `304`:
    /// store the stale entry with its headers updated (RFC 9111 §4.3.4)
    /// and return it, or the stale entry as it was when the update may not
    /// be stored (the client is answered from it all the same: the origin
    /// just said it is current). `None` without a stale entry.
    pub fn refresh(
        &mut self,
        rule: &RouteCache,
        store: &Store,
        state: &mut CacheState,
        host: &mut impl Host,
        not_modified: &Headers<'_>,
        now_ms: u64,
    ) -> Option<Refreshed> {
        let stale = self.stale.clone()?;
        let Body::Response {
            status,
            headers,
            body,
        } = &stale.body
        else {
            return None;
        };
        // RFC 9111 §4.3.4: a 304 whose validator names another
        // representation does not update this one; the client still gets
        // it (the origin did not send a body), but nothing is stored.
        if !selects(&stale, not_modified) {
            return Some((stale, Ok(None)));
        }
        let merged = merged_headers(headers, not_modified, now_ms);
        let age = control::age_value(not_modified);
        let Some(mut capture) = self.assess(
            rule,
            state,
            *status,
            &Headers::new(&HeaderList::from(&merged[..])),
            age,
            now_ms,
        ) else {
            return Some((stale, Ok(None)));
        };
        capture.body = body.clone();
        self.capture = Some(capture);
        Some(match self.finish(store, state, host, now_ms) {
            Ok(Some(report)) => (report.entry.clone(), Ok(Some(report))),
            other => (stale, other),
        })
    }

    /// Add a streamed piece of the body. Collecting stops for good the
    /// moment the body outgrows the entry limit (the client still gets
    /// every byte: nothing is held back).
    pub fn on_body_chunk(&mut self, chunk: &[u8]) {
        if let Some(c) = &mut self.capture {
            if c.body.len() + chunk.len() > c.limit {
                self.capture = None;
            } else {
                c.body.extend_from_slice(chunk);
            }
        }
    }

    pub fn is_capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// The body is complete: store it in both tiers. `None` when nothing
    /// was stored (not storable, or invalidated while in flight).
    pub fn finish(
        &mut self,
        store: &Store,
        state: &mut CacheState,
        host: &mut impl Host,
        now_ms: u64,
    ) -> Result<Option<StoreReport>, HostError> {
        let Some(c) = self.capture.take() else {
            return Ok(None);
        };
        // Stored under the counters as they were when the request started
        // (the tags' too): an invalidation of its scopes meanwhile leaves
        // it unreachable; one of any other scope does not stop it.
        let mut gens = self.gens.clone();
        for t in &c.tags {
            let s = slot(&self.tenant, Scope::Tag(t), store.generation_slots);
            gens.push((s, self.snapshot.value(s)));
        }
        let fresh_until = now_ms + c.fresh.ttl_ms;
        let base = Entry {
            key: self.key.material.clone(),
            stored_ms: now_ms,
            initial_age_s: c.initial_age_s,
            fresh_until_ms: fresh_until,
            swr_until_ms: fresh_until + c.fresh.stale_while_revalidate_ms,
            sie_until_ms: fresh_until + c.fresh.stale_if_error_ms,
            keep_until_ms: fresh_until + c.fresh.keep_ms,
            fetch_ms: u32::try_from(now_ms.saturating_sub(self.started_ms)).unwrap_or(u32::MAX),
            gens,
            body: Body::Vary {
                names: c.vary.clone(),
            },
        };
        let bytes = c.body.len();
        let response = Body::Response {
            status: c.status,
            headers: c.headers,
            body: c.body,
        };
        let mut evicted = false;
        // The index the lookup read when it missed (the primary key's
        // slot, or the variant's): the store into that slot starts its
        // compare-and-swap from it.
        let mut seen = self.index_seen.take();
        let variant;
        let key = if c.vary.is_empty() {
            &self.key
        } else {
            // The marker at the primary key says which headers to vary on;
            // this variant lives under its own key.
            evicted |=
                l2::store_entry_seen(host, store, &self.key, &base, now_ms, &mut seen)?.evicted;
            state.l1.put(self.key.fast, Rc::new(base.clone()));
            variant = self
                .key
                .variant(&c.vary, &Headers::new(&self.request_headers));
            &variant
        };
        let entry = Entry {
            key: key.material.clone(),
            body: response,
            ..base
        };
        evicted |= l2::store_entry_seen(host, store, key, &entry, now_ms, &mut seen)?.evicted;
        let entry = Rc::new(entry);
        state.l1.put(key.fast, entry.clone());
        if let Some(v) = state.adaptive.get_mut(self.route) {
            v.stored();
        }
        Ok(Some(StoreReport {
            bytes,
            evicted,
            entry,
        }))
    }
}
