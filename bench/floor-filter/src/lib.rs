//! The floor of the bench: a proxy-wasm HTTP filter that does as little as
//! a filter can. Its plugin configuration is a word:
//!
//! - `pass`: every hook returns Continue (what being loaded costs, per
//!   stream, before any logic; row T);
//! - `reply`: every request answered at its headers with a 200 and a 1 KiB
//!   body (the cheapest answer made inside a wasm filter; row TD);
//! - `reply:<call>`: as `reply`, after making one host call of a kind
//!   [`CALLS`] times (the P rows): the difference from TD, divided by
//!   [`CALLS`], is what one such call costs on this host, so the filter's
//!   host calls per request can be priced in the same run;
//! - `<pass or reply>:<call>:<n>`: the call made `n` times instead (row TP:
//!   `pass:header:1`, a filter that reads `:path` and lets every request
//!   through, the least a filter with path rules does to a request none of
//!   them matches).

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

/// How many calls a P row makes per request: enough to stand well above
/// the run's noise, few enough that the reply still dominates nothing.
pub const CALLS: u32 = 20;

/// The host calls a P row can price, each the shape the optimizer makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// `proxy_get_shared_data` of an existing 37-byte value (a limiter
    /// slot, a coalescing marker, the invalidation epoch).
    SharedGet,
    /// `proxy_set_shared_data` of 37 bytes without a CAS.
    SharedSet,
    /// `proxy_get_header_map_value` of `:path`.
    Header,
    /// `proxy_get_header_map_pairs` of the request headers.
    Headers,
    /// `proxy_add_header_map_value` on the request.
    AddHeader,
    /// `proxy_increment_metric` of a defined counter.
    Increment,
    /// `proxy_get_metric` of a defined counter (no bytes returned: the
    /// value is written into the caller's word).
    Metric,
    /// `proxy_get_current_time_nanoseconds`.
    Time,
}

impl Call {
    fn parse(word: &str) -> Option<Call> {
        Some(match word {
            "shared_get" => Call::SharedGet,
            "shared_set" => Call::SharedSet,
            "header" => Call::Header,
            "headers" => Call::Headers,
            "add_header" => Call::AddHeader,
            "increment" => Call::Increment,
            "metric" => Call::Metric,
            "time" => Call::Time,
            _ => return None,
        })
    }
}

const SHARED_KEY: &str = "floor/price";
const SHARED_VALUE: [u8; 37] = [7; 37];

#[derive(Default)]
struct Root {
    reply: bool,
    call: Option<Call>,
    calls: u32,
    metric: u32,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        // The bench writes it as a JSON string in a YAML block: quotes
        // and a newline around the word.
        let text = String::from_utf8_lossy(&config);
        let mut parts = text.trim().trim_matches('"').split(':');
        self.reply = match parts.next() {
            Some("pass") => false,
            Some("reply") => true,
            _ => return false,
        };
        self.call = match parts.next() {
            None => None,
            Some(word) => match Call::parse(word) {
                Some(call) => Some(call),
                None => return false,
            },
        };
        self.calls = match parts.next() {
            None => CALLS,
            Some(n) => match n.parse() {
                Ok(n) => n,
                Err(_) => return false,
            },
        };
        if self.call.is_some() {
            self.metric = hostcalls::define_metric(MetricType::Counter, "floor_price").unwrap_or(0);
            if self
                .set_shared_data(SHARED_KEY, Some(&SHARED_VALUE), None)
                .is_err()
            {
                return false;
            }
        }
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            reply: self.reply,
            call: self.call,
            calls: self.calls,
            metric: self.metric,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    reply: bool,
    call: Option<Call>,
    calls: u32,
    metric: u32,
}

impl Context for Stream {}

/// The body of every reply: the bench's 1 KiB answer.
static BODY: [u8; 1024] = [b'x'; 1024];

impl Stream {
    fn make_calls(&mut self, call: Call) {
        for _ in 0..self.calls {
            match call {
                Call::SharedGet => {
                    let _ = self.get_shared_data(SHARED_KEY);
                }
                Call::SharedSet => {
                    let _ = self.set_shared_data(SHARED_KEY, Some(&SHARED_VALUE), None);
                }
                Call::Header => {
                    let _ = self.get_http_request_header(":path");
                }
                Call::Headers => {
                    let _ = self.get_http_request_headers();
                }
                Call::AddHeader => self.add_http_request_header("x-floor-price", "0123456789"),
                Call::Increment => {
                    let _ = hostcalls::increment_metric(self.metric, 1);
                }
                Call::Metric => {
                    let _ = hostcalls::get_metric(self.metric);
                }
                Call::Time => {
                    let _ = self.get_current_time();
                }
            }
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> Action {
        if let Some(call) = self.call {
            self.make_calls(call);
        }
        if !self.reply {
            return Action::Continue;
        }
        self.send_http_response(200, vec![("content-type", "text/plain")], Some(&BODY));
        Action::Pause
    }
}
