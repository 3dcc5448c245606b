//! Local replies for other streams that a stream's filter hook made on
//! Envoy, held until a hook whose result Envoy does not read as a filter
//! status (see `ProxyHost::wake` for the host fact behind it).

use std::cell::RefCell;

use optimizer_core::host::{Host, HostKind, StreamId, Wake};
use optimizer_core::pipeline::ACTIONS_PER_CALL;

use crate::host_adapter::ProxyHost;

/// A local reply for another stream, kept until it can be sent.
struct HeldReply {
    stream: StreamId,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

thread_local! {
    /// This worker's held replies, in the order they were made (one VM
    /// per worker thread).
    static HELD: RefCell<Vec<HeldReply>> = const { RefCell::new(Vec::new()) };
}

/// Keep a reply for `stream` until [`send`].
pub fn hold(stream: StreamId, status: u16, headers: &[(&str, &[u8])], body: &[u8]) {
    let reply = HeldReply {
        stream,
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect(),
        body: body.to_vec(),
    };
    HELD.with(|h| h.borrow_mut().push(reply));
}

/// Send the replies held on this worker, oldest first and at most
/// `ACTIONS_PER_CALL` of them (the bound on local replies per host call;
/// the rest wait for the next such hook), through [`Host::wake`] from
/// `home`'s view. Called at the start of the hooks whose return Envoy does
/// not turn into a filter status: a stream's `on_done`, the root's tick,
/// callout answers.
pub fn send(home: u32) {
    let held = HELD.with(|h| {
        h.try_borrow_mut().map(|mut v| {
            let n = v.len().min(ACTIONS_PER_CALL);
            v.drain(..n).collect::<Vec<_>>()
        })
    });
    let Ok(held) = held else { return };
    // Not a filter hook: `wake` sends at once, and acts on `home` again.
    let mut host = ProxyHost::stream(HostKind::Envoy, home);
    for r in held {
        let headers: Vec<(&str, &[u8])> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        // A client gone meanwhile answers BadArgument: nothing to send.
        let _ = host.wake(
            r.stream,
            Wake::Reply {
                status: r.status,
                headers: &headers,
                body: &r.body,
            },
        );
    }
}
