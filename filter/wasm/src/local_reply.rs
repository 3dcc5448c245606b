//! Local replies on Kong carry exactly the bytes the filter sent.
//!
//! Kong's engine appends "\n" to the body of every local reply
//! (ngx_wasm_module 3bed2783, `send_local_response`), which would change a
//! cached body by a byte and corrupt a binary one. So on Kong the adapter
//! keeps the exact body of each reply it sends, by stream, and the
//! reply's own trip through the stream's response hooks puts it back:
//! the headers lose the host's `content-length`, the body gets its exact
//! bytes.
//! (Envoy sends local replies as given; nothing is kept there.)

use std::cell::RefCell;

use std::collections::HashMap;

use crate::abi;

thread_local! {
    // One VM per worker thread: this is the worker's.
    static SENT: RefCell<HashMap<u32, Vec<u8>>> = RefCell::new(HashMap::new());
}

/// Remember the exact body of a local reply sent for `stream` on Kong.
pub fn keep(stream: u32, body: &[u8]) {
    if body.is_empty() {
        return; // the host appends nothing to an empty body
    }
    SENT.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.insert(stream, body.to_vec());
        }
    });
}

fn kept_len(stream: u32) -> Option<usize> {
    SENT.with(|m| m.try_borrow().ok()?.get(&stream).map(Vec::len))
}

/// Response headers of `stream`: a kept reply loses the host's
/// `content-length` (one byte too many) and goes chunked. (Setting the
/// exact length works too, but the host then logs a warning for every
/// reply when the body is replaced after the headers left.)
pub fn on_headers(stream: u32) {
    if kept_len(stream).is_some() {
        let _ = abi::remove_header(abi::RESPONSE_HEADERS, "content-length");
    }
}

/// A piece of `stream`'s response body. For a kept reply: `true` while the
/// body is still coming (the host buffers it), and at its end the whole
/// buffer is replaced with the exact bytes.
pub fn on_body(stream: u32, size: usize, end_of_stream: bool) -> Option<bool> {
    kept_len(stream)?;
    if !end_of_stream {
        return Some(true);
    }
    let body = SENT.with(|m| m.try_borrow_mut().ok()?.remove(&stream))?;
    let _ = abi::set_buffer(abi::BUFFER_RESPONSE_BODY, 0, size, &body);
    Some(false)
}

/// The stream ended: forget what was kept for it.
pub fn forget(stream: u32) {
    SENT.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.remove(&stream);
        }
    });
}
