//! Waking where a paused request can only be woken from its own context
//! (Kong; DESIGN.md "Host facts"). The timer and the callout answers still
//! decide for parked requests (the limiter's queue, a leader's answer, a
//! lease, a batch's answer), but there they cannot act: [`defer`] leaves
//! the decision on the request. Each parked request has a wake call in
//! flight to `wake.target` (`cost-control`'s `GET /v1/wake?after_ms=N`),
//! and when that call answers, in the request's own context, [`on_answer`]
//! carries out the decision, or calls again.
//!
//! If the wake target cannot be reached a request cannot wait: it stops
//! waiting as [`give_up`] says (a refusal where waiting was the rule's
//! condition, on through the stages where waiting was only a saving).

use crate::host::{Host, Level, StreamId};

use super::machine::{self, Cx, Release, Reply};
use super::phase::{Phase, Served, Wait};
use super::Exchange;

/// Wake calls in a row that may fail before a request stops waiting.
const MAX_FAILURES: u8 = 2;

/// How long a wake call may take beyond its delay before it counts as
/// failed.
const SLACK_MS: u64 = 1_000;

/// A parked request's wake, on a host where it wakes itself.
#[derive(Debug, Default)]
pub struct SelfWake {
    /// Its wake call in flight.
    pub(super) token: Option<u32>,
    /// What was decided for it while it could not be woken.
    pub(super) decided: Option<Release>,
    /// Wake calls in a row that failed.
    pub(super) failures: u8,
}

/// Call `wake.target` so that `stream` is woken after the worker's fast
/// tick; the call's token, or `None` when it could not be made (no
/// target, or the host refused it).
pub(super) fn arm<H: Host>(cx: &mut Cx<'_, H>, stream: StreamId) -> Option<u32> {
    let wake = cx.filter.config.wake.as_ref()?;
    let delay = cx.filter.config.coalesce_store.tick_ms;
    let path = format!("/v1/wake?after_ms={delay}");
    let call = crate::host::Callout {
        target: &wake.target,
        headers: vec![
            (":method", b"GET"),
            (":path", path.as_bytes()),
            (":authority", wake.authority.as_bytes()),
        ],
        body: None,
        timeout_ms: delay + SLACK_MS,
    };
    match cx.host.http_call(&call) {
        Ok(token) => Some(token),
        Err(e) => {
            cx.host.log(
                Level::Warn,
                &format!("[{stream}] cannot make its wake call: {e:?}"),
            );
            None
        }
    }
}

/// Keep `how` for the parked request `ex` to carry out itself. An answer
/// is kept over a later "go on": once a stage answered for it, that is
/// its answer.
pub(super) fn defer(ex: &mut Exchange, how: Release) {
    match (&ex.wake.decided, &how) {
        (Some(Release::Answer(..)), Release::Resume) => {}
        _ => ex.wake.decided = Some(how),
    }
}

/// How a request that cannot wait stops waiting.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum GiveUp {
    /// Refused with 503: waiting was the rule's condition (a rate-limit
    /// token, a budget lease), and skipping it would break the rule.
    Refuse,
    /// On to the stage after the wait: waiting was only a saving (a
    /// leader's answer, a batch).
    GoOn,
}

pub(super) fn give_up(wait: Wait) -> GiveUp {
    match wait {
        Wait::Limit | Wait::Lease => GiveUp::Refuse,
        Wait::Leader | Wait::Batch => GiveUp::GoOn,
    }
}

/// The answer of a request refused because it could not wait.
pub(super) fn unavailable(own: Vec<(String, Vec<u8>)>) -> Reply {
    Reply::json(
        503,
        &[("retry-after", b"1")],
        own,
        br#"{"error":"unavailable","message":"the gateway cannot wake a waiting request (wake target unreachable)"}"#,
    )
}

/// Whether `token` is the wake call of `stream`.
pub(super) fn is_wake_call(cx: &Cx<'_, impl Host>, stream: StreamId, token: u32) -> bool {
    cx.worker
        .requests
        .get(&stream)
        .is_some_and(|ex| ex.wake.token == Some(token))
}

/// The wake call of `stream` answered (in its own context): carry out what
/// was decided for it, or wait again.
pub(super) fn on_answer<H: Host>(cx: &mut Cx<'_, H>, stream: StreamId) {
    let ok = (200..300).contains(&cx.host.callout_status());
    let Some(ex) = cx.worker.requests.get_mut(&stream) else {
        return;
    };
    ex.wake.token = None;
    if let Some(how) = ex.wake.decided.take() {
        machine::release(cx, stream, how);
        return;
    }
    let Phase::Parked(wait) = ex.phase else {
        return;
    };
    ex.wake.failures = if ok { 0 } else { ex.wake.failures + 1 };
    if ex.wake.failures < MAX_FAILURES {
        if let Some(token) = arm(cx, stream) {
            if let Some(ex) = cx.worker.requests.get_mut(&stream) {
                ex.wake.token = Some(token);
            }
            return;
        }
    }
    cx.host.log(
        Level::Warn,
        &format!("[{stream}] stops waiting ({wait:?}): its wake calls fail"),
    );
    // `release` takes it out of its stage's index.
    let how = match give_up(wait) {
        GiveUp::Refuse => match machine::own_headers(cx, stream) {
            Some(own) => Release::Answer(unavailable(own), Served::Refused),
            None => return,
        },
        GiveUp::GoOn => Release::Resume,
    };
    machine::release(cx, stream, how);
}
