//! Local replies on Kong carry exactly what the filter sent.
//!
//! Two host facts (ngx_wasm_module 3bed2783), both handled here so the
//! core sends every answer the same way on both hosts:
//!
//! - `send_local_response` appends "\n" to the body, which would change a
//!   cached body by a byte and corrupt a binary one. So the adapter keeps
//!   the exact body of each reply it sends, by stream, and the reply's own
//!   trip through the stream's response hooks puts it back: the headers
//!   lose the host's `content-length` (the reply goes chunked; setting the
//!   exact length works too, but then the host logs a warning for every
//!   reply whose body changes after its headers left), and the body gets
//!   its exact bytes.
//! - In the response-headers phase (a stale entry replacing an upstream
//!   error) a local response keeps the upstream's headers and length and
//!   drops the reply's, and the phase cannot pause. So there the adapter
//!   rewrites the upstream response in place instead: status, headers and
//!   `content-length` at once, and the body as it passes (its pieces
//!   emptied, the last one replaced by the reply's body).
//!
//! Envoy sends local replies as given; nothing is kept there.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::abi;

/// A reply's body waiting for its stream's response body hook.
struct Kept {
    body: Vec<u8>,
    /// Rewritten in place (response phase): the host's body is the
    /// upstream's, replaced piece by piece; else the host's is the reply's
    /// plus a "\n", buffered by the host until its end.
    in_place: bool,
}

thread_local! {
    // One VM per worker thread: this is the worker's.
    static KEPT: RefCell<HashMap<u32, Kept>> = RefCell::new(HashMap::new());
}

fn put(stream: u32, kept: Kept) {
    KEPT.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.insert(stream, kept);
        }
    });
}

fn in_place(stream: u32) -> Option<bool> {
    KEPT.with(|m| m.try_borrow().ok()?.get(&stream).map(|k| k.in_place))
}

/// Remember the exact body of a local reply sent for `stream` on Kong.
pub fn keep(stream: u32, body: &[u8]) {
    if body.is_empty() {
        return; // the host appends nothing to an empty body
    }
    put(
        stream,
        Kept {
            body: body.to_vec(),
            in_place: false,
        },
    );
}

/// Answer `stream` in its response-headers phase by rewriting the upstream
/// response into the reply (Kong).
pub fn rewrite(stream: u32, status: u16, headers: &[(&str, &[u8])], body: &[u8]) -> u32 {
    let status_ok = abi::replace_header(
        abi::RESPONSE_HEADERS,
        ":status",
        status.to_string().as_bytes(),
    );
    if status_ok != abi::OK {
        return status_ok;
    }
    for (name, value) in headers {
        let _ = abi::replace_header(abi::RESPONSE_HEADERS, name, value);
    }
    // Chunked, as the other replies on Kong: no length for the host to
    // warn about when the body changes.
    let _ = abi::remove_header(abi::RESPONSE_HEADERS, "content-length");
    put(
        stream,
        Kept {
            body: body.to_vec(),
            in_place: true,
        },
    );
    abi::OK
}

/// Whether `stream`'s response was rewritten in place: its response
/// headers go on (the phase cannot pause on Kong).
pub fn rewritten(stream: u32) -> bool {
    in_place(stream) == Some(true)
}

/// Response headers of `stream`: a reply sent with the host's "\n" loses
/// the host's `content-length`.
pub fn on_headers(stream: u32) {
    if in_place(stream) == Some(false) {
        let _ = abi::remove_header(abi::RESPONSE_HEADERS, "content-length");
    }
}

/// A piece of `stream`'s response body. For a kept reply: `Some(true)`
/// while the host should buffer the rest, and at the end the exact bytes
/// replace the body.
pub fn on_body(stream: u32, size: usize, end_of_stream: bool) -> Option<bool> {
    let in_place = in_place(stream)?;
    if !end_of_stream {
        if in_place {
            // The upstream's piece: gone; the reply's body comes at the end.
            let _ = abi::set_buffer(abi::BUFFER_RESPONSE_BODY, 0, size, b"");
            return Some(false);
        }
        return Some(true);
    }
    let kept = KEPT.with(|m| m.try_borrow_mut().ok()?.remove(&stream))?;
    // The host cuts the new bytes to the span replaced: make it cover them.
    let span = size.max(kept.body.len());
    let _ = abi::set_buffer(abi::BUFFER_RESPONSE_BODY, 0, span, &kept.body);
    Some(false)
}

/// The stream ended: forget what was kept for it.
pub fn forget(stream: u32) {
    KEPT.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.remove(&stream);
        }
    });
}
