//! Prompt rules (`prompt` block): a JSON POST is held at its body, read
//! once as a prompt (`crate::prompt`), and only then run through the
//! cache and the request stages, so the cache and coalescing key it by
//! what it asks and the budget reserves what it can cost.

use crate::headers::Headers;
use crate::host::Host;
use crate::prompt;

use super::machine::Cx;
use super::phase::Event;
use super::{Exchange, Verdict};

/// Whether this request's body is read before any stage decides: its rule
/// reads prompts and it is a POST with a body.
pub(super) fn reads_body<H: Host>(cx: &Cx<'_, H>, ex: &Exchange) -> bool {
    ex.has_body
        && cx
            .filter
            .config
            .routes
            .get(ex.route)
            .is_some_and(|r| r.prompt.is_some())
        && Headers::new(&ex.request).get(":method") == Some(b"POST")
}

/// A piece of a prompt's body (`size`: all of it buffered so far). The
/// host keeps buffering until the end; a body past the rule's bound is
/// not read, and the request goes on as one the rule does not share.
pub(super) fn on_request_body<H: Host>(
    cx: &mut Cx<'_, H>,
    ex: &mut Exchange,
    size: usize,
    end_of_stream: bool,
) -> Verdict {
    let Some(rule) = cx
        .filter
        .config
        .routes
        .get(ex.route)
        .and_then(|r| r.prompt.as_ref())
    else {
        return decide(cx, ex);
    };
    let counters = cx.filter.counters(ex.route).prompt;
    if size > rule.max_body_bytes as usize {
        counters.unread.add(cx.host, 1);
        return decide(cx, ex);
    }
    if !end_of_stream {
        return Verdict::Pause; // the host keeps buffering
    }
    let body = cx.host.request_body(size);
    match prompt::read(rule, &body) {
        Ok(facts) => {
            counters.read.add(cx.host, 1);
            if !facts.shareable {
                counters.unshared.add(cx.host, 1);
            }
            ex.prompt = Some(facts);
        }
        Err(_) => counters.unread.add(cx.host, 1),
    }
    decide(cx, ex)
}

/// The body is read (or will not be): the cache, then the stages, as at
/// the headers of any other request (its request id was set then).
fn decide<H: Host>(cx: &mut Cx<'_, H>, ex: &mut Exchange) -> Verdict {
    ex.enter(Event::Wake, cx.host);
    // The stages run now that the body is here (a slow upload may have
    // taken a while since the headers).
    ex.clock_ms = cx.host.now_ms();
    super::hooks::decide(cx, ex, false)
}
