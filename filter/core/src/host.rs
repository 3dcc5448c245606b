//! The seam between the filter's decisions and the gateway that runs them.
//!
//! Everything the filter asks of Envoy or Kong goes through [`Host`]; the
//! wasm crate implements it once (`filter/wasm/src/host_adapter.rs`) and
//! [`crate::mem_host::MemHost`] implements it in memory for native tests.
//! Where the two gateways differ (see DESIGN.md "Host facts"), the
//! difference lives behind one of these methods, never in strategy code.

/// The id the host gives an HTTP stream (the proxy-wasm context id).
pub type StreamId = u32;

/// Which gateway runs the filter. Chosen by config (`"host"`), because the
/// two differ in ways that cannot be probed safely (a missing host function
/// traps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKind {
    #[default]
    Envoy,
    Kong,
}

/// A host call that did not succeed. The adapter maps every status the host
/// can return onto one of these instead of panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    NotFound,
    /// The stream is gone (Envoy answers `BadArgument` to
    /// `set_effective_context` for a stream whose client left).
    BadArgument,
    /// Shared data changed since it was read.
    CasMismatch,
    /// The host lacks the function or refused it.
    Unsupported,
    /// Any other status, kept for the log line.
    Other(u32),
}

impl HostError {
    /// The error for a proxy-wasm status other than `Ok` (0): the ABI's
    /// `NotFound` (1), `BadArgument` (2), `CasMismatch` (8) and
    /// `Unimplemented` (12) by name, every other status as it is. Total,
    /// so no status a host returns can stop the filter (the Rust SDK's
    /// wrappers panic on any status they do not expect).
    pub fn from_status(status: u32) -> HostError {
        match status {
            1 => HostError::NotFound,
            2 => HostError::BadArgument,
            8 => HostError::CasMismatch,
            12 => HostError::Unsupported,
            s => HostError::Other(s),
        }
    }
}

/// Log levels, mirrored from proxy-wasm so the trait does not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// An outgoing HTTP call made by the filter itself (a batch flush, a spend
/// report, a budget lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout<'a> {
    /// Envoy: the cluster name. Kong: `host:port`. Config carries the right
    /// form for the host it targets, so the adapter passes it as is.
    pub target: &'a str,
    /// Pseudo headers (`:method`, `:path`, `:authority`) included.
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub body: Option<&'a [u8]>,
    pub timeout_ms: u64,
}

/// How to wake a paused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake<'a> {
    /// Let it continue to the next filter (and upstream).
    Resume,
    /// Answer it locally with this status, headers and body.
    Reply {
        status: u16,
        headers: &'a [(&'a str, &'a [u8])],
        body: &'a [u8],
    },
}

/// What the filter needs from a gateway. Methods that act on "the current
/// stream" are only valid inside that stream's own hooks; methods that take
/// a [`StreamId`] may be called from any context of the same worker (the
/// adapter switches context where the host allows it).
pub trait Host {
    // --- clock and entropy -------------------------------------------------
    /// Wall clock, milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Entropy from the host, used only to seed per-worker generators.
    fn random_u64(&mut self) -> u64;

    // --- the current request -----------------------------------------------
    /// One header of the current request (pseudo headers included).
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
    /// All headers of the current request in one host call.
    fn request_headers(&self) -> crate::header_list::HeaderList;
    /// Set (or with `None` remove) a request header before it goes upstream.
    fn set_request_header(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), HostError>;
    /// The buffered request body (request-body phase, `size` bytes).
    fn request_body(&self, size: usize) -> Vec<u8>;
    /// All headers of the current response (response-headers phase),
    /// `:status` included.
    fn response_headers(&self) -> crate::header_list::HeaderList;
    /// The current piece of the response body (response-body phase).
    fn response_body(&self, size: usize) -> Vec<u8>;
    /// Add a header to the current response (response-headers phase).
    fn add_response_header(&mut self, name: &str, value: &[u8]) -> Result<(), HostError>;

    /// `ip:port` of the upstream endpoint that answered the current
    /// request (its last attempt): Envoy's `upstream.address`; Kong gives
    /// the address and the port as two properties.
    fn upstream_peer(&self) -> Option<String> {
        self.property_str(&["upstream", "address"])
    }

    /// Send the current request to `upstream` through the host's own
    /// routing (routing stage). Envoy: set the request header `header`,
    /// which the route's `cluster_header` reads, and clear the route cache
    /// (Envoy 1.33+ does not always re-match after a header change), and
    /// `x-envoy-max-retries` to `retries`. Kong: set the property
    /// `property` (Kong Gateway: `kong.service.target`; bare nginx: an
    /// `ngx.<variable>` its `proxy_pass` reads); retries are the upstream
    /// block's.
    fn route_to(
        &mut self,
        upstream: &str,
        header: &str,
        property: &str,
        retries: u32,
    ) -> Result<(), HostError>;
    /// A string property such as a verified JWT claim in dynamic metadata.
    /// Envoy returns strings as raw bytes and Kong as strings; either way
    /// the adapter hands back UTF-8 or `None`.
    fn property_str(&self, path: &[&str]) -> Option<String>;

    // --- shared data (all workers of one gateway) ----------------------------
    /// The value and its CAS token, `None` when the key was never created.
    fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError>;
    /// Replace the value if it still has CAS token `cas` (from `shared_get`).
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError>;
    /// Write the value whatever it was (creating the key if needed); for
    /// keys whose writer already owns them through a compare-and-swap
    /// elsewhere (Envoy: CAS 0 means "no check"; Kong: CAS 0 means
    /// "create only", so the adapter reads the token first).
    fn shared_put(&mut self, key: &str, value: &[u8]) -> Result<(), HostError>;
    /// Create the key with `initial` unless it exists; never overwrites.
    /// Returns whether this call created it. (Envoy ignores CAS on a missing
    /// key and Kong treats CAS 0 as create-only: the adapter hides that.)
    fn shared_create(&mut self, key: &str, initial: &[u8]) -> Result<bool, HostError>;

    // --- callouts, replies, resumption -------------------------------------
    /// Start an HTTP call; the answer arrives later with the returned token.
    fn http_call(&mut self, call: &Callout<'_>) -> Result<u32, HostError>;
    /// Headers of the answer to an HTTP call (in `on_http_call_response`),
    /// `:status` included.
    fn callout_response_headers(&self) -> crate::header_list::HeaderList;
    /// The status of the answer to an HTTP call; 0 when there is none (the
    /// call failed or timed out).
    fn callout_status(&self) -> u16 {
        crate::headers::Headers::new(&self.callout_response_headers())
            .get_str(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    /// Body of the answer to an HTTP call (in `on_http_call_response`).
    fn callout_response_body(&self, size: usize) -> Vec<u8>;
    /// Wake a paused request: answer it locally, or let it go upstream.
    /// The one way the filter acts on a request outside that request's
    /// own response hooks, because the hosts differ here (DESIGN.md "Host
    /// facts"): Envoy lets any context of the worker wake a paused stream
    /// (and answers `BadArgument` when its client is gone); Kong lets only
    /// the stream itself do it, so there the adapter refuses other streams
    /// with `Unsupported`. Only the pipeline's state machine calls it.
    fn wake(&mut self, stream: StreamId, how: Wake<'_>) -> Result<(), HostError>;

    /// Whether [`Host::wake`] can reach `stream` from the context this
    /// call runs in. Envoy: from any context of its worker. Kong: only
    /// from the stream's own.
    fn can_wake(&self, stream: StreamId) -> bool {
        let _ = stream;
        true
    }

    /// Whether a paused request must arrange its own wake: on Kong nothing
    /// else can wake it and its context has no timer, so it makes a wake
    /// call and is woken when that call answers (DESIGN.md "Host facts").
    fn wakes_itself(&self) -> bool {
        false
    }

    /// Timer period of this worker's root context (0 stops it). Envoy
    /// takes it from any context of the worker, as often as asked. Kong
    /// takes it only from the root and only once (see
    /// [`Host::tick_period_fixed`]); the adapter refuses the rest with
    /// `Unsupported` instead of letting the host trap.
    fn set_tick_period(&mut self, ms: u64) -> Result<(), HostError>;

    /// Whether the root's timer period, once set, cannot change (Kong: a
    /// second period traps with "tick_period already set", and going
    /// through 0 leaves two timers running). Then the filter sets it once,
    /// at configure.
    fn tick_period_fixed(&self) -> bool {
        false
    }

    // --- observability -------------------------------------------------------
    /// Define a counter; `None` when the host refused it (then increments are
    /// dropped, the request is not affected).
    fn define_counter(&mut self, name: &str) -> Option<u32>;
    /// Add `delta` to a counter: at once, or into this worker's held sums
    /// while [`Host::hold_counters`] is on.
    fn increment(&mut self, metric: u32, delta: i64);
    /// From now on, keep increments in the worker (`true`) until
    /// [`Host::flush_counters`], instead of one host call each; the
    /// filter flushes from its timer (`metrics.flush_ms`). `false` sends
    /// each increment at once again (held sums wait for the next flush).
    fn hold_counters(&mut self, hold: bool);
    /// Send every held sum: one host call per counter that moved.
    fn flush_counters(&mut self);
    /// Add `delta` to a counter at once, never held: for a counter other
    /// workers read through [`Host::counter_value`].
    fn increment_at_once(&mut self, metric: u32, delta: i64);
    /// A counter's value on the gateway: every increment any worker sent
    /// (Envoy: one stat, updated atomically by all workers; Kong: the
    /// workers' slots summed). Envoy keeps a stat a `stats_matcher`
    /// rejects as a null stat that always reads 0. `None` when the host
    /// refused the call.
    fn counter_value(&self, metric: u32) -> Option<u64>;
    fn log(&self, level: Level, message: &str);
}
