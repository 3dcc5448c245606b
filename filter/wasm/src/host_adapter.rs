//! The one place the filter calls its gateway: [`ProxyHost`] implements the
//! core's `Host` trait over proxy-wasm, with the Envoy/Kong differences
//! (DESIGN.md "Host facts") decided here and nowhere else.

use optimizer_core::header_list::HeaderList;
use optimizer_core::host::{Callout, Host, HostError, HostKind, Level, StreamId, Wake};

use crate::abi;

thread_local! {
    /// A period was set on this worker's root (one VM per worker thread).
    static TICK_SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The worker's held counter increments (one VM per worker thread).
    static HELD: std::cell::RefCell<optimizer_core::held_counts::HeldCounts> =
        std::cell::RefCell::new(Default::default());
}

/// A view of the host from one context (a stream or the root).
pub struct ProxyHost {
    kind: HostKind,
    /// The host called into the root context (not a stream).
    root: bool,
    /// The host called a stream's response hook (Kong answers differently
    /// there, see `local_reply`).
    response_phase: bool,
    /// The host called one of a stream's request or response hooks, whose
    /// return it reads as the stream's filter status.
    filter_hook: bool,
    /// The context the host called into.
    home: u32,
    /// The context host calls currently act on.
    current: u32,
}

fn error(status: u32) -> HostError {
    HostError::from_status(status)
}

fn result(status: u32) -> Result<(), HostError> {
    if status == abi::OK {
        Ok(())
    } else {
        Err(error(status))
    }
}

/// The filter's configuration, read by the root context `root` in
/// `on_configure`; `None` (logged) when the host answers the read with an
/// error. The SDK's `get_plugin_configuration` panics there on any status
/// but `Ok` and `NotFound`, and Kong (ngx_wasm_module 3bed2783) answers
/// `InternalFailure` when it cannot allocate the copy. The caller refuses
/// the configuration then, as it refuses an invalid one.
pub fn plugin_configuration(root: u32) -> Option<Vec<u8>> {
    match abi::buffer(abi::BUFFER_PLUGIN_CONFIGURATION, 0, usize::MAX) {
        Ok(bytes) => Some(bytes),
        Err(status) => {
            // The kind is not known before the configuration is read; a
            // log line is the same on both hosts.
            ProxyHost::root(HostKind::default(), root).log(
                Level::Error,
                &format!(
                    "[{root}] cost-optimizer cannot read its configuration: host status {status} ({:?})",
                    error(status)
                ),
            );
            None
        }
    }
}

impl ProxyHost {
    /// A view from the root context `id`.
    pub fn root(kind: HostKind, id: u32) -> Self {
        ProxyHost {
            kind,
            root: true,
            response_phase: false,
            filter_hook: false,
            home: id,
            current: id,
        }
    }

    /// A view from the stream context `id`.
    pub fn stream(kind: HostKind, id: u32) -> Self {
        ProxyHost {
            root: false,
            ..Self::root(kind, id)
        }
    }

    /// The same view, inside one of the stream's response hooks.
    pub fn in_response(self) -> Self {
        ProxyHost {
            response_phase: true,
            ..self
        }
    }

    /// The same view, inside one of the stream's request or response
    /// hooks (not `on_done`, not a callout answer).
    pub fn in_filter_hook(self) -> Self {
        ProxyHost {
            filter_hook: true,
            ..self
        }
    }

    /// Whether the request-headers hook's `end_of_stream` means what it
    /// says. Kong's engine always passes `false` there, even for a GET
    /// without a body, so on Kong a request whose headers announce no body
    /// (no `content-length`, or 0, and no `transfer-encoding`: RFC 9112
    /// section 6.3) ends at its headers.
    pub fn request_ends_at_headers(&self, end_of_stream: bool) -> bool {
        if end_of_stream || self.kind != HostKind::Kong {
            return end_of_stream;
        }
        let header = |name| abi::header(abi::REQUEST_HEADERS, name).ok().flatten();
        let no_length = header("content-length").is_none_or(|v| v.trim_ascii() == b"0");
        no_length && header("transfer-encoding").is_none()
    }

    /// Make `stream` the target of the next stream call. Envoy lets any
    /// context of the worker act on a paused stream after
    /// `set_effective_context`, and answers `BadArgument` when the client
    /// is gone (a reply sent anyway would land on the root context, so the
    /// result must be checked). Kong ignores the call and crashes when a
    /// stream is answered from elsewhere, so there only the stream itself
    /// may act on itself.
    fn target(&mut self, stream: StreamId) -> Result<(), HostError> {
        if !self.can_wake(stream) {
            return Err(HostError::Unsupported);
        }
        if stream != self.current {
            result(abi::set_effective_context(stream))?;
            self.current = stream;
        }
        Ok(())
    }

    /// Act on the home context again after answering another stream, so
    /// the rest of the hook does not land on the wrong request.
    fn back_home(&mut self) {
        if self.current != self.home && abi::set_effective_context(self.home) == abi::OK {
            self.current = self.home;
        }
    }
}

impl Host for ProxyHost {
    fn now_ms(&self) -> u64 {
        abi::now_nanos().map(|n| n / 1_000_000).unwrap_or(0)
    }

    fn random_u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        if getrandom::fill(&mut buf).is_ok() {
            return u64::from_le_bytes(buf);
        }
        // No entropy from the host: mix clock and context id, which still
        // differ between workers.
        let t = abi::now_nanos().unwrap_or(0);
        t ^ (u64::from(self.current) << 32) ^ 0x9E37_79B9_7F4A_7C15
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        if name == ":path" && self.kind == HostKind::Kong {
            return kong_raw_path();
        }
        abi::header(abi::REQUEST_HEADERS, name).ok().flatten()
    }

    fn request_headers(&self) -> HeaderList {
        let mut all = abi::headers(abi::REQUEST_HEADERS).unwrap_or_default();
        if self.kind == HostKind::Kong {
            if let Some(raw) = kong_raw_path() {
                all.set_value(":path", &raw);
            }
        }
        all
    }

    fn set_request_header(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        result(match value {
            Some(v) => abi::replace_header(abi::REQUEST_HEADERS, name, v),
            None => abi::remove_header(abi::REQUEST_HEADERS, name),
        })
    }

    fn response_headers(&self) -> HeaderList {
        abi::headers(abi::RESPONSE_HEADERS).unwrap_or_default()
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        abi::buffer(abi::BUFFER_REQUEST_BODY, 0, size).unwrap_or_default()
    }

    fn callout_response_headers(&self) -> HeaderList {
        abi::headers(abi::CALL_RESPONSE_HEADERS).unwrap_or_default()
    }

    fn callout_response_body(&self, size: usize) -> Vec<u8> {
        abi::buffer(abi::BUFFER_CALL_RESPONSE_BODY, 0, size).unwrap_or_default()
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        abi::buffer(abi::BUFFER_RESPONSE_BODY, 0, size).unwrap_or_default()
    }

    fn add_response_header(&mut self, name: &str, value: &[u8]) -> Result<(), HostError> {
        result(abi::add_header(abi::RESPONSE_HEADERS, name, value))
    }

    fn upstream_peer(&self) -> Option<String> {
        let address = self.property_str(&["upstream", "address"])?;
        match self.kind {
            HostKind::Envoy => Some(address),
            // ngx_wasm_module 3bed2783: `upstream.address` is the peer's
            // name up to its last ':', `upstream.port` the rest.
            HostKind::Kong => {
                let port = self.property_str(&["upstream", "port"])?;
                Some(format!("{address}:{port}"))
            }
        }
    }

    fn route_to(
        &mut self,
        upstream: &str,
        header: &str,
        property: &str,
        retries: u32,
    ) -> Result<(), HostError> {
        match self.kind {
            HostKind::Envoy => {
                self.set_request_header(header, Some(upstream.as_bytes()))?;
                let n = retries.to_string();
                self.set_request_header("x-envoy-max-retries", Some(n.as_bytes()))?;
                // The route (and its cluster_header's cluster) may have been
                // matched already; make the router match again.
                result(abi::call_foreign("clear_route_cache", b""))
            }
            HostKind::Kong => {
                let path: Vec<&str> = property.split('.').collect();
                result(abi::set_property(&path, upstream.as_bytes()))
            }
        }
    }

    fn property_str(&self, path: &[&str]) -> Option<String> {
        // Envoy serialises a string property as its raw bytes (other types
        // as typed binary, which the callers here never ask for); Kong
        // returns strings. Both arrive as UTF-8 text or are refused.
        let bytes = abi::property(path).ok().flatten()?;
        String::from_utf8(bytes).ok()
    }

    fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        abi::shared_get(key).map_err(error)
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        // A CAS of 0 means "no check" on Envoy and "create only" on Kong;
        // callers always pass the token they read, which is never 0 for an
        // existing key on either host.
        result(abi::shared_set(key, value, cas))
    }

    fn shared_put(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        match self.kind {
            HostKind::Envoy => result(abi::shared_set(key, value, 0)),
            // Kong: CAS 0 is "create only", so write with the current token.
            HostKind::Kong => {
                for _ in 0..8 {
                    let cas = abi::shared_get(key)
                        .map_err(error)?
                        .map(|(_, c)| c)
                        .unwrap_or(0);
                    match abi::shared_set(key, value, cas) {
                        abi::OK => return Ok(()),
                        abi::CAS_MISMATCH => continue,
                        s => return Err(error(s)),
                    }
                }
                Err(HostError::CasMismatch)
            }
        }
    }

    fn shared_create(&mut self, key: &str, initial: &[u8]) -> Result<bool, HostError> {
        match self.kind {
            // Envoy has no insert-if-absent (it ignores CAS for a missing
            // key): read first. Tables are created in `on_configure`, which
            // Envoy runs on the main thread before workers serve traffic,
            // so the window between the read and the write has no readers.
            HostKind::Envoy => {
                if abi::shared_get(key).map_err(error)?.is_some() {
                    return Ok(false);
                }
                result(abi::shared_set(key, initial, 0)).map(|()| true)
            }
            // Kong treats CAS 0 as "create only".
            HostKind::Kong => match abi::shared_set(key, initial, 0) {
                abi::OK => Ok(true),
                abi::CAS_MISMATCH => Ok(false),
                s => Err(error(s)),
            },
        }
    }

    fn http_call(&mut self, call: &Callout<'_>) -> Result<u32, HostError> {
        // Through `abi`, every status an error; the answer is routed by
        // this module's own exports (`sdk.rs`), which learn the token here.
        let timeout = u32::try_from(call.timeout_ms).unwrap_or(u32::MAX);
        let token =
            abi::http_call(call.target, &call.headers, call.body, timeout).map_err(error)?;
        crate::sdk::register_callout(token);
        Ok(token)
    }

    fn wake(&mut self, stream: StreamId, how: Wake<'_>) -> Result<(), HostError> {
        // Envoy fact (proxy-wasm cpp-host, checked on 1.40): a local reply
        // raises one stop flag for the whole VM, and the hook running
        // turns its own result into "stop" when it returns. A reply for
        // another stream (a leader answering its followers) sent from a
        // stream's filter hook would therefore stop that stream for good:
        // the leader's last body chunk never leaves and its connection
        // carries no further request. Such replies are held and sent from
        // the worker's next hook that is not a filter hook (the leader's
        // own `on_done` comes right after its response ends).
        if let (
            HostKind::Envoy,
            true,
            Wake::Reply {
                status,
                headers,
                body,
            },
        ) = (self.kind, self.filter_hook && stream != self.home, &how)
        {
            crate::held_replies::hold(stream, *status, headers, body);
            return Ok(());
        }
        self.target(stream)?;
        let r = match how {
            Wake::Resume => result(abi::continue_request()),
            Wake::Reply {
                status,
                headers,
                body,
            } => match self.kind {
                HostKind::Kong if self.response_phase => {
                    result(crate::local_reply::rewrite(stream, status, headers, body))
                }
                HostKind::Kong => {
                    let sent = result(abi::send_local_response(u32::from(status), headers, body));
                    if sent.is_ok() {
                        crate::local_reply::keep(stream, body);
                    }
                    sent
                }
                HostKind::Envoy => {
                    result(abi::send_local_response(u32::from(status), headers, body))
                }
            },
        };
        self.back_home();
        r
    }
    fn can_wake(&self, stream: StreamId) -> bool {
        match self.kind {
            HostKind::Envoy => true,
            HostKind::Kong => !self.root && stream == self.home,
        }
    }

    fn wakes_itself(&self) -> bool {
        self.kind == HostKind::Kong
    }

    fn tick_period_fixed(&self) -> bool {
        self.kind == HostKind::Kong
    }

    fn set_tick_period(&mut self, ms: u64) -> Result<(), HostError> {
        // Kong traps on both: "can only set tick_period in root context",
        // "tick_period already set" (ngx_wasm_module 3bed2783).
        if self.kind == HostKind::Kong && (!self.root || TICK_SET.get()) {
            return Err(HostError::Unsupported);
        }
        let r = result(abi::set_tick_period(u32::try_from(ms).unwrap_or(u32::MAX)));
        if r.is_ok() && ms > 0 {
            TICK_SET.set(true);
        }
        r
    }

    fn define_counter(&mut self, name: &str) -> Option<u32> {
        abi::define_counter(name).ok()
    }

    fn increment(&mut self, metric: u32, delta: i64) {
        let held = HELD.with(|h| h.try_borrow_mut().is_ok_and(|mut h| h.keep(metric, delta)));
        if !held {
            abi::increment_metric(metric, delta);
        }
    }

    fn hold_counters(&mut self, hold: bool) {
        HELD.with(|h| {
            if let Ok(mut h) = h.try_borrow_mut() {
                h.hold(hold);
            }
        });
    }

    fn flush_counters(&mut self) {
        HELD.with(|h| {
            if let Ok(mut h) = h.try_borrow_mut() {
                // Passes bytes in only: the host does not call back into
                // the VM, so the borrow cannot be asked for again meanwhile.
                h.drain(|id, sum| {
                    abi::increment_metric(id, sum);
                });
            }
        });
    }

    fn increment_at_once(&mut self, metric: u32, delta: i64) {
        abi::increment_metric(metric, delta);
    }

    fn counter_value(&self, metric: u32) -> Option<u64> {
        abi::get_metric(metric)
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => 0,
            Level::Debug => 1,
            Level::Info => 2,
            Level::Warn => 3,
            Level::Error => 4,
        };
        abi::log(level, message);
    }
}

/// Kong's `:path` is nginx's `$uri` plus its arguments: percent-decoded
/// and with dot segments resolved, while `proxy_pass` sends the client's
/// raw request line upstream (`$request_uri`). A cache key made from the
/// first would give `/a/./b`, `/a/%62` and `/a%2Fb` the answer stored for
/// another path the upstream tells apart (issue 19, checked against
/// ngx_wasm_module 3bed2783's `ngx_proxy_wasm_maps_get_path`). Its
/// `request.path` property is `$request_uri`: what goes upstream.
fn kong_raw_path() -> Option<Vec<u8>> {
    abi::property_at("request\0path").ok().flatten()
}
