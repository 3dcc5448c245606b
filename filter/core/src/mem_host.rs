//! An in-memory [`Host`] for native tests of the pure logic.
//!
//! Several `MemHost`s can share one [`SharedStore`] to stand for the workers
//! of one gateway; the store can be told to fail the next compare-and-swap
//! writes, the way a concurrent writer on another worker would make them
//! fail.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use crate::header_list::HeaderList;
use crate::host::{Callout, Host, HostError, Level, StreamId, Wake};

/// Shared data as both hosts behave once a key exists: every write bumps the
/// CAS token, and a write with a stale token fails.
#[derive(Debug, Default)]
pub struct SharedStore {
    entries: HashMap<String, (Vec<u8>, u32)>,
    conflicts_to_inject: usize,
    /// Successful CAS writes, for assertions.
    pub writes: usize,
    /// Every counter as the gateway keeps it: all workers' increments
    /// sent so far, by name (what `counter_value` reads).
    counters: HashMap<String, u64>,
    /// The gateway keeps no counter values: each reads 0, as a counter
    /// does on Envoy when a `stats_matcher` rejects its name.
    pub null_counters: bool,
}

impl SharedStore {
    pub fn new_shared() -> Rc<RefCell<SharedStore>> {
        Rc::new(RefCell::new(SharedStore::default()))
    }

    /// The next `n` writes fail with `CasMismatch`, each after another
    /// writer bumped the token (as if it rewrote the same value).
    pub fn inject_conflicts(&mut self, n: usize) {
        self.conflicts_to_inject = n;
    }

    pub fn value(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(|(v, _)| v.as_slice())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A reply the filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub stream: StreamId,
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

/// Where the filter routed a request (`Host::route_to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub upstream: String,
    pub header: String,
    pub property: String,
    pub retries: u32,
}

/// A callout the filter made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCallout {
    pub token: u32,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

impl SentCallout {
    /// Its `:path`.
    pub fn path(&self) -> Option<&str> {
        find(&self.headers, ":path")
    }
}

fn find<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

#[derive(Debug)]
pub struct MemHost {
    pub now_ms: u64,
    rng: u64,
    pub request_headers: Vec<(String, Vec<u8>)>,
    pub response_headers: Vec<(String, Vec<u8>)>,
    /// The piece of response body the next `response_body` call returns.
    pub response_chunk: Vec<u8>,
    /// The buffered request body `request_body` returns.
    pub request_body: Vec<u8>,
    /// The answer to a callout, for `callout_response_*`.
    pub callout_headers: Vec<(String, Vec<u8>)>,
    pub callout_body: Vec<u8>,
    pub properties: HashMap<Vec<String>, String>,
    pub shared: Rc<RefCell<SharedStore>>,
    pub replies: Vec<Reply>,
    pub resumed: Vec<StreamId>,
    pub callouts: Vec<SentCallout>,
    /// Every `route_to`, in order.
    pub routed: Vec<Routed>,
    /// Host calls made, by the `Host` method's name (what a call costs on
    /// a real host is a crossing of the VM boundary: the profile of
    /// `pipeline/host_calls_tests.rs` counts them per request).
    pub calls: RefCell<BTreeMap<&'static str, u64>>,
    /// Streams whose client has gone: replies and resumes fail for them.
    pub gone: HashSet<StreamId>,
    /// Counters as the host shows them: what the filter sent.
    pub counters: BTreeMap<String, i64>,
    /// Increments the filter holds until its next flush (`hold_counters`).
    pub held: crate::held_counts::HeldCounts,
    /// Every tick period set, in order.
    pub tick_periods: Vec<u64>,
    metric_names: Vec<String>,
    pub logs: RefCell<Vec<(Level, String)>>,
    next_token: u32,
    /// Kong's rules when set: a paused stream is woken only from its own
    /// context, the timer is set only from the root and only once, and
    /// paused requests wake themselves.
    pub own_context_wakes: bool,
    /// The context the next call runs in (Kong rules): a stream, or
    /// `None` for the root.
    pub context: Option<StreamId>,
    /// When set, every `http_call` fails with this; a proxy-wasm status
    /// `n` as the adapter maps it is `HostError::from_status(n)`.
    pub call_error: Option<HostError>,
}

impl Default for MemHost {
    fn default() -> Self {
        Self::new()
    }
}

impl MemHost {
    pub fn new() -> Self {
        Self::with_store(SharedStore::new_shared())
    }

    /// A host that shares its shared data with others (another "worker").
    pub fn with_store(shared: Rc<RefCell<SharedStore>>) -> Self {
        MemHost {
            now_ms: 1_700_000_000_000,
            rng: 0x9E37_79B9_7F4A_7C15,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            response_chunk: Vec::new(),
            request_body: Vec::new(),
            callout_headers: Vec::new(),
            callout_body: Vec::new(),
            properties: HashMap::new(),
            shared,
            replies: Vec::new(),
            resumed: Vec::new(),
            callouts: Vec::new(),
            routed: Vec::new(),
            calls: RefCell::new(BTreeMap::new()),
            gone: HashSet::new(),
            counters: BTreeMap::new(),
            tick_periods: Vec::new(),
            metric_names: Vec::new(),
            held: Default::default(),
            logs: RefCell::new(Vec::new()),
            next_token: 1,
            own_context_wakes: false,
            context: None,
            call_error: None,
        }
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = seed;
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.request_headers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// A GET of `path` with the pseudo headers Envoy sets.
    pub fn get(path: &str) -> Self {
        Self::new()
            .with_header(":method", "GET")
            .with_header(":path", path)
            .with_header(":authority", "api.test")
            .with_header(":scheme", "http")
    }

    pub fn with_property(mut self, path: &[&str], value: &str) -> Self {
        self.properties.insert(
            path.iter().map(|s| s.to_string()).collect(),
            value.to_string(),
        );
        self
    }

    pub fn request_header_str(&self, name: &str) -> Option<&str> {
        find(&self.request_headers, name)
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        find(&self.response_headers, name)
    }

    /// A counter with what the filter holds for it: what the host shows
    /// once the worker flushed (see [`MemHost::sent_counter`]).
    pub fn counter(&self, name: &str) -> i64 {
        let held = self
            .metric_names
            .iter()
            .position(|n| n == name)
            .map_or(0, |id| self.held.held(id as u32));
        self.sent_counter(name) + held
    }

    /// One increment call reaching the host: counted, and added to the
    /// counter the host shows.
    fn send_increment(&mut self, metric: u32, delta: i64) {
        self.count("increment");
        if let Some(name) = self.metric_names.get(metric as usize) {
            *self.counters.entry(name.clone()).or_insert(0) += delta;
            let mut store = self.shared.borrow_mut();
            let total = store.counters.entry(name.clone()).or_insert(0);
            *total = total.wrapping_add_signed(delta);
        }
    }

    /// A counter as the host shows it now: only the increments sent.
    pub fn sent_counter(&self, name: &str) -> i64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

/// Run MemHost's own bookkeeping (what it records of the bytes a filter
/// passes in, which a real host keeps outside the VM) outside the native
/// tests' allocation count.
#[cfg(test)]
fn quiet<R>(f: impl FnOnce() -> R) -> R {
    crate::alloc_count::uncounted(f)
}

#[cfg(not(test))]
fn quiet<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The kinds of host call (as [`MemHost::take_calls`] names them) that
/// return bytes: on Envoy the host calls back into the VM to allocate
/// what they return, which makes them the dear kind (`make bench`'s P
/// rows price both kinds).
pub const CALLS_RETURNING_BYTES: [&str; 9] = [
    "request_header",
    "request_headers",
    "response_headers",
    "response_body",
    "request_body",
    "shared_get",
    "property_str",
    "callout_response_headers",
    "callout_response_body",
];

impl MemHost {
    fn count(&self, call: &'static str) {
        quiet(|| {
            *self.calls.borrow_mut().entry(call).or_default() += 1;
        })
    }

    /// Host calls since the last `take_calls`, by method. The table keeps
    /// its keys (at 0), so counting a kind seen before allocates nothing
    /// (the allocation profile counts what the filter allocates).
    /// The latest callout to `path` (its `:path`).
    pub fn last_callout_to(&self, path: &str) -> Option<&SentCallout> {
        self.callouts.iter().rev().find(|c| c.path() == Some(path))
    }

    pub fn take_calls(&self) -> BTreeMap<&'static str, u64> {
        let mut calls = self.calls.borrow_mut();
        let mut out = calls.clone();
        out.retain(|_, n| *n > 0);
        calls.values_mut().for_each(|n| *n = 0);
        out
    }
}

impl Host for MemHost {
    fn now_ms(&self) -> u64 {
        self.count("now_ms");
        self.now_ms
    }

    fn random_u64(&mut self) -> u64 {
        self.count("random_u64");
        // splitmix64: deterministic per seed, good enough for tests.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.count("request_header");
        self.request_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn request_headers(&self) -> HeaderList {
        self.count("request_headers");
        HeaderList::from(&self.request_headers[..])
    }

    fn set_request_header(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        quiet(|| {
            self.count("set_request_header");
            self.request_headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            if let Some(v) = value {
                self.request_headers.push((name.to_string(), v.to_vec()));
            }
            Ok(())
        })
    }

    fn response_headers(&self) -> HeaderList {
        self.count("response_headers");
        HeaderList::from(&self.response_headers[..])
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        self.count("request_body");
        self.request_body[..size.min(self.request_body.len())].to_vec()
    }

    fn callout_response_headers(&self) -> HeaderList {
        self.count("callout_response_headers");
        HeaderList::from(&self.callout_headers[..])
    }

    fn callout_response_body(&self, size: usize) -> Vec<u8> {
        self.count("callout_response_body");
        self.callout_body[..size.min(self.callout_body.len())].to_vec()
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        self.count("response_body");
        self.response_chunk[..size.min(self.response_chunk.len())].to_vec()
    }

    fn add_response_header(&mut self, name: &str, value: &[u8]) -> Result<(), HostError> {
        quiet(|| {
            self.count("add_response_header");
            self.response_headers
                .push((name.to_string(), value.to_vec()));
            Ok(())
        })
    }

    fn route_to(
        &mut self,
        upstream: &str,
        header: &str,
        property: &str,
        retries: u32,
    ) -> Result<(), HostError> {
        quiet(|| {
            self.count("route_to");
            self.routed.push(Routed {
                upstream: upstream.to_string(),
                header: header.to_string(),
                property: property.to_string(),
                retries,
            });
            Ok(())
        })
    }

    fn property_str(&self, path: &[&str]) -> Option<String> {
        self.count("property_str");
        let key: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.properties.get(&key).cloned()
    }

    fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        self.count("shared_get");
        Ok(self.shared.borrow().entries.get(key).cloned())
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        quiet(|| {
            self.count("shared_set");
            let mut store = self.shared.borrow_mut();
            if store.conflicts_to_inject > 0 {
                store.conflicts_to_inject -= 1;
                if let Some(entry) = store.entries.get_mut(key) {
                    entry.1 = entry.1.wrapping_add(1);
                }
                return Err(HostError::CasMismatch);
            }
            match store.entries.get_mut(key) {
                Some(entry) if entry.1 == cas => {
                    entry.0 = value.to_vec();
                    entry.1 = entry.1.wrapping_add(1);
                }
                Some(_) => return Err(HostError::CasMismatch),
                None => return Err(HostError::NotFound),
            }
            store.writes += 1;
            Ok(())
        })
    }

    fn shared_put(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        quiet(|| {
            self.count("shared_put");
            let mut store = self.shared.borrow_mut();
            let entry = store
                .entries
                .entry(key.to_string())
                .or_insert((Vec::new(), 0));
            entry.0 = value.to_vec();
            entry.1 = entry.1.wrapping_add(1);
            store.writes += 1;
            Ok(())
        })
    }

    fn shared_create(&mut self, key: &str, initial: &[u8]) -> Result<bool, HostError> {
        quiet(|| {
            self.count("shared_create");
            let mut store = self.shared.borrow_mut();
            if store.entries.contains_key(key) {
                return Ok(false);
            }
            store.entries.insert(key.to_string(), (initial.to_vec(), 1));
            Ok(true)
        })
    }

    fn http_call(&mut self, call: &Callout<'_>) -> Result<u32, HostError> {
        quiet(|| {
            self.count("http_call");
            if let Some(e) = self.call_error {
                return Err(e);
            }
            let token = self.next_token;
            self.next_token += 1;
            self.callouts.push(SentCallout {
                token,
                target: call.target.to_string(),
                headers: call
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_vec()))
                    .collect(),
                body: call.body.map(|b| b.to_vec()),
                timeout_ms: call.timeout_ms,
            });
            Ok(token)
        })
    }

    fn wake(&mut self, stream: StreamId, how: Wake<'_>) -> Result<(), HostError> {
        quiet(|| {
            self.count("wake");
            if !self.can_wake(stream) {
                return Err(HostError::Unsupported);
            }
            if self.gone.contains(&stream) {
                return Err(HostError::BadArgument);
            }
            match how {
                Wake::Resume => self.resumed.push(stream),
                Wake::Reply {
                    status,
                    headers,
                    body,
                } => self.replies.push(Reply {
                    stream,
                    status,
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_vec()))
                        .collect(),
                    body: body.to_vec(),
                }),
            }
            Ok(())
        })
    }

    fn can_wake(&self, stream: StreamId) -> bool {
        !self.own_context_wakes || self.context == Some(stream)
    }

    fn wakes_itself(&self) -> bool {
        self.own_context_wakes
    }

    fn tick_period_fixed(&self) -> bool {
        self.own_context_wakes
    }

    fn set_tick_period(&mut self, ms: u64) -> Result<(), HostError> {
        quiet(|| {
            self.count("set_tick_period");
            if self.own_context_wakes
                && (self.context.is_some()
                    || (ms > 0 && self.tick_periods.last().is_some_and(|&p| p > 0)))
            {
                // Kong traps on both: a request's context, a second period.
                return Err(HostError::Unsupported);
            }
            self.tick_periods.push(ms);
            Ok(())
        })
    }

    fn define_counter(&mut self, name: &str) -> Option<u32> {
        quiet(|| {
            self.count("define_counter");
            if let Some(i) = self.metric_names.iter().position(|n| n == name) {
                return u32::try_from(i).ok();
            }
            self.metric_names.push(name.to_string());
            self.counters.insert(name.to_string(), 0);
            u32::try_from(self.metric_names.len() - 1).ok()
        })
    }

    fn increment(&mut self, metric: u32, delta: i64) {
        quiet(|| {
            if !self.held.keep(metric, delta) {
                self.send_increment(metric, delta);
            }
        })
    }

    fn hold_counters(&mut self, hold: bool) {
        quiet(|| self.held.hold(hold))
    }

    fn flush_counters(&mut self) {
        quiet(|| {
            let mut sums = Vec::new();
            self.held.drain(|id, d| sums.push((id, d)));
            for (id, d) in sums {
                self.send_increment(id, d);
            }
        })
    }

    fn increment_at_once(&mut self, metric: u32, delta: i64) {
        quiet(|| self.send_increment(metric, delta))
    }

    fn counter_value(&self, metric: u32) -> Option<u64> {
        self.count("counter_value");
        let name = self.metric_names.get(metric as usize)?;
        let store = self.shared.borrow();
        if store.null_counters {
            return Some(0);
        }
        Some(store.counters.get(name).copied().unwrap_or(0))
    }

    fn log(&self, level: Level, message: &str) {
        quiet(|| {
            self.count("log");
            self.logs.borrow_mut().push((level, message.to_string()));
        })
    }
}

#[cfg(test)]
#[path = "mem_host_tests.rs"]
mod tests;
