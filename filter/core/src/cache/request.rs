//! The cache at request headers: bypass, hit, or forward (and what the
//! forward should do with the answer).

use std::rc::Rc;

use crate::config::{RouteCache, Store};
use crate::headers::Headers;
use crate::host::Host;

use super::control::{self, RequestMode};
use super::entry::{Body, Entry};
use super::generations::{slot, Scope, Snapshot};
use super::key::{self, Key};
use super::purges;
use super::response::Capture;
use super::{l2, CacheState, Fwd, Label};

/// A request that goes upstream, and what to do with its answer.
#[derive(Debug)]
pub struct Forward {
    pub key: Key,
    pub fwd: Fwd,
    pub route: usize,
    /// Invalidation counters recorded when the request started.
    pub gens: Vec<(u32, u32)>,
    /// Every counter as it stood then (for the tags the answer names).
    pub snapshot: Snapshot,
    pub tenant: String,
    /// A stale entry to answer with if the upstream fails, and to refresh
    /// when the upstream answers `304 Not Modified`.
    pub stale: Option<Rc<Entry>>,
    /// The stale entry's validators went upstream with the request
    /// (`if-none-match`, `if-modified-since`): a `304` refreshes it.
    pub validators: Vec<(&'static str, Vec<u8>)>,
    /// The request carried `authorization` (RFC 9111 §3.5: stored only
    /// when the answer says it may be shared).
    pub authorization: bool,
    /// The request was conditional or a range: only a `200` answer to it
    /// is the resource (a 412, 416 or 206 answers this request alone).
    pub conditional: bool,
    /// Whether the answer may be stored (a HEAD answer has no body).
    pub storable: bool,
    pub started_ms: u64,
    /// The request's headers, for the key of a variant (upstream `Vary`).
    pub request_headers: crate::header_list::HeaderList,
    /// Set at response headers when the answer is being stored.
    pub capture: Option<Capture>,
    /// The slot index the lookup read when it missed, for the store.
    pub index_seen: Option<l2::IndexSeen>,
    /// A prompt's answer (`prompt` rules): stored for the rule's
    /// `default_ttl` unless it says `no-store`, whatever else its
    /// `cache-control` says (LLM APIs send `no-cache` on every answer).
    pub prompt: bool,
}

#[derive(Debug)]
pub enum Outcome {
    /// Answer from the cache; `refresh`: and refresh the entry in the
    /// background (stale-while-revalidate, early refresh), this request
    /// having won the entry's refresh lease.
    Hit {
        entry: Rc<Entry>,
        label: Label,
        refresh: Option<Box<Forward>>,
    },
    Forward(Box<Forward>),
    /// Not the cache's business (`fwd` says why).
    Bypass {
        fwd: Fwd,
    },
    /// A write: on success, bump these generation slots (and those of
    /// the answer's `location` / `content-location`, see
    /// [`location_slots`]).
    Write {
        slots: Vec<u32>,
    },
}

/// Everything `on_request` needs to know about the request.
pub struct RequestFacts<'a> {
    pub route: usize,
    pub tenant: &'a str,
    pub headers: Headers<'a>,
    pub all_headers: &'a crate::header_list::HeaderList,
    pub now_ms: u64,
    /// Uniform in (0, 1], for early refresh.
    pub rand01: f64,
    /// How long a refresh lease lasts.
    pub lease_ms: u64,
    /// A background refresh can be queued (the worker's queue has room).
    pub background: bool,
    /// The request carries a header that keeps it from shared answers
    /// (`shared_answers.bypass_headers`).
    pub unshared: bool,
    /// A prompt's body digest (`prompt` rules): part of the key, and the
    /// POST is a read, not a write.
    pub prompt: Option<&'a str>,
    /// The host counter that moves with every invalidation
    /// (`Metrics::cache_epoch`); `None`: read the shared epoch instead.
    pub epoch_hint: Option<u32>,
}

/// Any method not known to be safe invalidates on success (RFC 9111
/// §4.4: "unsafe" includes methods whose safety is unknown, e.g. WebDAV's
/// or a custom `PURGE`).
fn is_write(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// Slots a successful write to `path` bumps: the path and every related
/// prefix of the rule.
fn write_scopes(rule: &RouteCache, tenant: &str, path: &str, slots: u32) -> Vec<u32> {
    let mut s = vec![slot(tenant, Scope::Path(path), slots)];
    s.extend(
        rule.related_prefixes
            .iter()
            .map(|p| slot(tenant, Scope::Prefix(p), slots)),
    );
    s
}

/// Slots a successful write also bumps for the URIs its answer names in
/// `location` and `content-location` (RFC 9111 §4.4), when they are on the
/// request's own origin: a path, or an absolute URI whose authority is the
/// request's.
pub fn location_slots(
    rule: &RouteCache,
    tenant: &str,
    authority: &str,
    values: &[&str],
    slots: u32,
) -> Vec<u32> {
    values
        .iter()
        .filter_map(|v| same_origin_path(v.trim(), authority))
        .map(|p| {
            let (path, _) = key::normalise(p.as_bytes(), &rule.ignore_query);
            slot(tenant, Scope::Path(&path), slots)
        })
        .collect()
}

/// The path and query of `uri` if it is on `authority`'s origin.
fn same_origin_path<'a>(uri: &'a str, authority: &str) -> Option<&'a str> {
    if uri.starts_with('/') && !uri.starts_with("//") {
        return Some(uri);
    }
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .or_else(|| {
            // Scheme names are case-insensitive.
            let lower = uri.get(..8)?.to_ascii_lowercase();
            if lower.starts_with("http://") {
                uri.get(7..)
            } else if lower == "https://" {
                uri.get(8..)
            } else {
                None
            }
        })?;
    let (host, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    host.eq_ignore_ascii_case(authority).then_some(path)
}

/// Request fields that make the request conditional or partial: the
/// client's own validators go upstream untouched (the cache adds none),
/// and its answer (a 304, a 206) is its own (not stored unless a 200, not
/// shared with a coalesced plain request).
pub const CLIENT_CONDITIONALS: [&str; 6] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// The validators of `entry` a conditional request to refresh it sends
/// (RFC 9111 §4.3.1), unless the client's request is conditional itself.
fn validators_for(entry: &Entry, request: &Headers<'_>) -> Vec<(&'static str, Vec<u8>)> {
    if CLIENT_CONDITIONALS.iter().any(|h| request.get(h).is_some()) {
        return Vec::new();
    }
    entry_validators(entry)
}

/// `if-none-match` / `if-modified-since` from the entry's `etag` and
/// `last-modified`.
pub fn entry_validators(entry: &Entry) -> Vec<(&'static str, Vec<u8>)> {
    let Body::Response { headers, .. } = &entry.body else {
        return Vec::new();
    };
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut out = Vec::new();
    if let Some(etag) = find("etag") {
        out.push(("if-none-match", etag));
    }
    if let Some(lm) = find("last-modified") {
        out.push(("if-modified-since", lm));
    }
    out
}

pub fn on_request(
    store: &Store,
    rule: &RouteCache,
    state: &mut CacheState,
    host: &mut impl Host,
    facts: RequestFacts<'_>,
) -> Outcome {
    let headers = &facts.headers;
    let method = headers.get_str(":method").unwrap_or("GET");
    let path_and_query = headers.get(":path").unwrap_or(b"/");
    // The normalised path and query name the scopes a write bumps and a
    // stored answer depends on; a hit needs neither, so they are made
    // only on those paths.
    let normalised = || key::normalise(path_and_query, &rule.ignore_query);
    let prompt = facts.prompt;
    if prompt.is_none() && is_write(method) {
        let (path, _) = normalised();
        return Outcome::Write {
            slots: write_scopes(rule, facts.tenant, &path, store.generation_slots),
        };
    }
    if prompt.is_none() && !rule.methods.iter().any(|m| m == method) {
        return Outcome::Bypass { fwd: Fwd::Method };
    }
    let mode = control::request_mode(&control::directives(headers));
    let authorization = headers.get("authorization").is_some();
    if mode == RequestMode::Bypass || facts.unshared || (authorization && !rule.allow_authorization)
    {
        return Outcome::Bypass { fwd: Fwd::Bypass };
    }
    let mut key = key::primary(
        facts.tenant,
        method,
        path_and_query,
        &rule.ignore_query,
        &rule.vary,
        headers,
    );
    if let Some(digest) = prompt {
        key = key.with_body(digest);
    }
    state
        .gens
        .refresh(host, store.generation_slots, facts.epoch_hint);
    // What a stored answer will depend on, as the counters stand now (the
    // worker's copy is not refreshed again in this call). Only requests
    // that go upstream need it, so a hit does not pay for the hashing.
    let go = |mut forward: Forward, state: &CacheState| -> Outcome {
        forward.snapshot = state.gens.snapshot();
        let key = &forward.key;
        forward.gens = purges::entry_slots(
            rule,
            facts.tenant,
            key.path(),
            key.query(),
            store.generation_slots,
        )
        .into_iter()
        .map(|s| (s, forward.snapshot.value(s)))
        .collect();
        forward.tenant = facts.tenant.to_string();
        if let Some(stale) = &forward.stale {
            forward.validators = validators_for(stale, &facts.headers);
        }
        Outcome::Forward(Box::new(forward))
    };
    let mut forward = Forward {
        key,
        fwd: Fwd::Miss,
        route: facts.route,
        gens: Vec::new(),
        snapshot: Snapshot::default(),
        tenant: String::new(),
        stale: None,
        validators: Vec::new(),
        authorization,
        conditional: CLIENT_CONDITIONALS.iter().any(|h| headers.get(h).is_some()),
        storable: method == "GET" || prompt.is_some(),
        started_ms: facts.now_ms,
        request_headers: Default::default(),
        capture: None,
        index_seen: None,
        prompt: prompt.is_some(),
    };
    // Preconditions this cache does not evaluate go to the origin (which
    // does); its answer may still be stored.
    let precondition = ["if-match", "if-unmodified-since"]
        .iter()
        .any(|h| headers.get(h).is_some());
    if mode == RequestMode::Revalidate || precondition {
        forward.fwd = Fwd::Request;
        return go(forward, state);
    }
    let now = facts.now_ms;
    let background = rule.refresh.is_some() && facts.background;
    let seen = &mut forward.index_seen;
    let Some((entry, variant)) = find(store, state, host, &forward.key, headers, now, seen) else {
        return go(forward, state);
    };
    // Only a refresh needs the key again (the variant's, when the entry
    // was found through a vary marker); a plain hit copies no key.
    let claim = |host: &mut _, key: &Key| -> bool {
        let found_key = variant.as_ref().unwrap_or(key);
        match l2::lookup(host, store, found_key, now) {
            Some(found) => {
                l2::claim_refresh(host, store, &found, found_key, now, now + facts.lease_ms)
            }
            None => true, // gone from the shared tier meanwhile: refresh it
        }
    };
    if now < entry.fresh_until_ms {
        let early = rule.xfetch_beta > 0.0 && entry.fetch_ms > 0 && {
            let gap = f64::from(entry.fetch_ms)
                * rule.xfetch_beta
                * -facts.rand01.max(f64::MIN_POSITIVE).ln();
            now as f64 + gap >= entry.fresh_until_ms as f64
        };
        if early && claim(host, &forward.key) {
            forward.fwd = Fwd::Stale;
            forward.stale = Some(entry.clone());
            let f = go(forward, state);
            return in_background(f, entry, Label::Hit, background, facts.all_headers);
        }
        return Outcome::Hit {
            entry,
            label: Label::Hit,
            refresh: None,
        };
    }
    if now < entry.swr_until_ms {
        if claim(host, &forward.key) {
            forward.fwd = Fwd::Stale;
            forward.stale = Some(entry.clone());
            let f = go(forward, state);
            return in_background(f, entry, Label::Stale, background, facts.all_headers);
        }
        return Outcome::Hit {
            entry,
            label: Label::Stale,
            refresh: None,
        };
    }
    // Expired (or stored only to be revalidated): refreshing it.
    forward.fwd = Fwd::Stale;
    forward.stale = Some(entry);
    go(forward, state)
}

/// The request that won an entry's refresh lease: with a background
/// refresh configured it is answered from the entry at once and the
/// refresh goes on without it; otherwise it goes upstream itself.
/// A refresh leaves later, from the timer, with a copy of the request's
/// headers (the request itself is answered now). A request that goes
/// upstream gets its own headers when it leaves (`Exchange::enter`).
fn in_background(
    forward: Outcome,
    entry: Rc<Entry>,
    label: Label,
    background: bool,
    request_headers: &crate::header_list::HeaderList,
) -> Outcome {
    match forward {
        Outcome::Forward(mut f) if background => {
            f.request_headers = request_headers.clone();
            Outcome::Hit {
                entry,
                label,
                refresh: Some(f),
            }
        }
        other => other,
    }
}

/// The usable response entry for `key`, following a vary marker to the
/// variant for this request's headers (then returned too). L1 first, then
/// L2 (filling L1).
fn find(
    store: &Store,
    state: &mut CacheState,
    host: &mut impl Host,
    key: &Key,
    headers: &Headers<'_>,
    now: u64,
    seen: &mut Option<l2::IndexSeen>,
) -> Option<(Rc<Entry>, Option<Key>)> {
    let entry = find_one(store, state, host, key, now, seen)?;
    match &entry.body {
        Body::Response { .. } => Some((entry, None)),
        Body::Vary { names } => {
            let variant = key.variant(names, headers);
            let e = find_one(store, state, host, &variant, now, seen)?;
            matches!(e.body, Body::Response { .. }).then_some((e, Some(variant)))
        }
    }
}

fn find_one(
    store: &Store,
    state: &mut CacheState,
    host: &mut impl Host,
    key: &Key,
    now: u64,
    seen: &mut Option<l2::IndexSeen>,
) -> Option<Rc<Entry>> {
    if let Some(e) = state.l1.get(&key.fast) {
        if e.key == key.material && now < e.usable_until_ms() && state.gens.valid(&e.gens) {
            return Some(e);
        }
        state.l1.remove(&key.fast);
    }
    let found = l2::lookup_seen(host, store, key, now, seen)?;
    if !state.gens.valid(&found.entry.gens) {
        return None;
    }
    let e = Rc::new(found.entry);
    state.l1.put(key.fast, e.clone());
    Some(e)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
