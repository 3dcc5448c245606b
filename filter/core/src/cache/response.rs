//! The cache at response time: serve stale on upstream error, decide
//! whether to store, collect the body as it streams (never holding it
//! back), and store it when the stream ends.

use std::rc::Rc;

use crate::config::{RouteCache, Store};
use crate::headers::Headers;
use crate::host::{Host, HostError};

use super::control;
use super::entry::{Body, Entry};
use super::generations::{slot, Scope};
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
    ttl_ms: u64,
    swr_ms: u64,
    sie_ms: u64,
    initial_age_s: u64,
    vary: Vec<String>,
    tags: Vec<String>,
}

/// What to do with the upstream's response headers.
#[derive(Debug)]
pub enum OnHeaders {
    /// Answer with this stale entry instead (stale-if-error).
    ServeStale(Rc<Entry>),
    /// Pass it on; `stored` tells whether it will be stored (known now
    /// when the length is known).
    Pass { storing: bool },
}

/// What storing did, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreReport {
    pub bytes: usize,
    pub evicted: bool,
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
        if !self.storable || !rule.statuses.contains(&status) || headers.get("set-cookie").is_some()
        {
            return OnHeaders::Pass { storing: false };
        }
        let vary = split_list(&header_values(headers, "vary"), false);
        if vary.iter().any(|v| v == "*") {
            return OnHeaders::Pass { storing: false };
        }
        let limit = rule.max_entry_bytes as usize;
        let length: Option<usize> = headers
            .get_str("content-length")
            .and_then(|v| v.trim().parse().ok());
        if length.is_some_and(|l| l > limit) {
            return OnHeaders::Pass { storing: false };
        }
        let d = control::directives(headers);
        let age_s = headers
            .get_str("age")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let adaptive = rule.adaptive_ttl_ms.map(|b| {
            state
                .adaptive
                .get(self.route)
                .copied()
                .unwrap_or_default()
                .ttl_ms(b)
        });
        let default_ttl = adaptive.or(rule.default_ttl_ms);
        let Some(mut fresh) = control::freshness(
            &d,
            headers.get_str("expires"),
            headers.get_str("date"),
            age_s,
            now_ms,
            default_ttl,
            rule.max_ttl_ms,
        ) else {
            return OnHeaders::Pass { storing: false };
        };
        if let Some(a) = adaptive {
            fresh.ttl_ms = fresh.ttl_ms.min(a.max(1));
        }
        self.capture = Some(Capture {
            status,
            headers: headers
                .iter()
                .filter(|(k, _)| storable_header(k))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec()))
                .collect(),
            body: Vec::with_capacity(length.unwrap_or(0).min(limit)),
            limit,
            ttl_ms: fresh.ttl_ms,
            swr_ms: fresh.stale_while_revalidate_ms,
            sie_ms: fresh.stale_if_error_ms,
            initial_age_s: age_s,
            vary,
            tags: split_list(
                &[
                    header_values(headers, "cache-tag"),
                    header_values(headers, "surrogate-key"),
                ]
                .concat(),
                true,
            ),
        });
        OnHeaders::Pass {
            storing: length.is_some(),
        }
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
        // An invalidation while the request was in flight may have been
        // for exactly this resource: do not store what it replaced.
        state.gens.refresh(host, store.generation_slots);
        if state.gens.epoch() != self.epoch {
            return Ok(None);
        }
        let tenant = self
            .key
            .material
            .lines()
            .find_map(|l| l.strip_prefix("t="))
            .unwrap_or_default()
            .to_string();
        let mut gens = self.gens.clone();
        for t in &c.tags {
            let s = slot(&tenant, Scope::Tag(t), store.generation_slots);
            gens.push((s, state.gens.value(s)));
        }
        let fresh_until = now_ms + c.ttl_ms;
        let base = Entry {
            key: self.key.material.clone(),
            stored_ms: now_ms,
            initial_age_s: c.initial_age_s,
            fresh_until_ms: fresh_until,
            swr_until_ms: fresh_until + c.swr_ms,
            sie_until_ms: fresh_until + c.sie_ms,
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
        let key = if c.vary.is_empty() {
            self.key.clone()
        } else {
            // The marker at the primary key says which headers to vary on;
            // this variant lives under its own key.
            evicted |= l2::store_entry(host, store, &self.key, &base, now_ms)?.evicted;
            state.l1.put(self.key.fast, Rc::new(base.clone()));
            self.key
                .variant(&c.vary, &Headers::new(&self.request_headers))
        };
        let entry = Entry {
            key: key.material.clone(),
            body: response,
            ..base
        };
        evicted |= l2::store_entry(host, store, &key, &entry, now_ms)?.evicted;
        state.l1.put(key.fast, Rc::new(entry));
        if let Some(v) = state.adaptive.get_mut(self.route) {
            v.stored();
        }
        Ok(Some(StoreReport { bytes, evicted }))
    }
}
