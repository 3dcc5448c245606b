//! The floor of the bench: a proxy-wasm HTTP filter that does as little as
//! a filter can. Its plugin configuration is `pass` (every hook returns
//! Continue: what being loaded costs, per stream, before any logic) or
//! `reply` (every request answered at its headers with a 200 and a 1 KiB
//! body: what the cheapest answer made inside a wasm filter costs).
//! Rows T and TD of `make bench` run it; C and D are set against them.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| Box::new(Root { reply: false }));
}}

struct Root {
    reply: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        // The bench writes it as a JSON string in a YAML block: quotes
        // and a newline around the word.
        let word = String::from_utf8_lossy(&config);
        self.reply = match word.trim().trim_matches('"') {
            "pass" => false,
            "reply" => true,
            _ => return false,
        };
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { reply: self.reply }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    reply: bool,
}

impl Context for Stream {}

/// The body of every reply: the bench's 1 KiB answer.
static BODY: [u8; 1024] = [b'x'; 1024];

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> Action {
        if !self.reply {
            return Action::Continue;
        }
        self.send_http_response(200, vec![("content-type", "text/plain")], Some(&BODY));
        Action::Pause
    }
}
