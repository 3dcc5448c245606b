//! The state machine a request lives in: [`advance`] runs it through the
//! request stages from a given one, and [`release`] is how a parked
//! request is woken (answered, or sent on from the stage after the one
//! that parked it). The request hooks and the timer both go through
//! these two, so a request that waited continues exactly as if it had
//! not; stages decide, and only this module moves a request between
//! phases and wakes it through the host.

use crate::host::{Host, Level, StreamId, Wake};

use super::phase::{Event, Phase, Served, Stage, Wait};
use super::self_wake::{self, GiveUp};
use super::{
    batch_stage, budget_stage, coalesce_stage, limit_stage, route_stage, timer, Exchange, Filter,
    Worker,
};

/// One call's context: the configured filter, the worker's state and the
/// host, passed as one value to the stages.
pub struct Cx<'a, H: Host> {
    pub filter: &'a Filter,
    pub worker: &'a mut Worker,
    pub host: &'a mut H,
}

/// An answer the filter makes itself, built where the decision is made
/// and sent by the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON answer with the request's own headers (`own`).
    pub fn json(
        status: u16,
        extra: &[(&str, &[u8])],
        own: Vec<(String, Vec<u8>)>,
        body: &[u8],
    ) -> Self {
        let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(1 + extra.len() + own.len());
        headers.push(("content-type".into(), b"application/json".to_vec()));
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_vec())));
        headers.extend(own);
        Reply {
            status,
            headers,
            body: body.to_vec(),
        }
    }

    fn send(&self, host: &mut impl Host, stream: StreamId) -> Result<(), crate::host::HostError> {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        host.wake(
            stream,
            Wake::Reply {
                status: self.status,
                headers: &headers,
                body: &self.body,
            },
        )
    }
}

/// What a request stage decided.
#[derive(Debug)]
pub(super) enum Outcome {
    /// On to the next stage.
    Pass,
    /// Pause it; the stage keeps it in its index until its wait is over.
    Park(Wait),
    /// Answer it.
    Answer(Reply, Served),
    /// Let its headers go on and gather its body (batching).
    AwaitBody,
}

/// What the host should do with a request after the stages ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Let it go on (upstream, or its headers on while the body comes).
    Go,
    /// Keep it paused: parked, or answered.
    Hold,
}

/// How a parked request's wait ends.
#[derive(Debug)]
pub(super) enum Release {
    /// Answer it (refused, or served by the strategy it waited for).
    Answer(Reply, Served),
    /// It goes on through the stages after the one that parked it.
    Resume,
}

impl Exchange {
    /// Move to the phase the table gives for `event`.
    pub(super) fn enter(&mut self, event: Event, host: &impl Host) {
        match self.phase.on(event) {
            Some(next) => {
                if next == Phase::Upstream {
                    // The stored answer's variant key, a stale entry's
                    // revalidation: the request's headers are needed at
                    // its response, and by nothing else once it has left.
                    if let super::CacheStep::Forward(f) = &mut self.cache {
                        f.request_headers = std::mem::take(&mut self.request);
                    }
                }
                self.phase = next;
            }
            None => host.log(
                Level::Warn,
                &format!(
                    "[{}] no move from {:?} on {:?}; kept",
                    self.stream, self.phase, event
                ),
            ),
        }
    }
}

/// Run `ex` through the stages from `from` on.
pub(super) fn advance<H: Host>(cx: &mut Cx<'_, H>, ex: &mut Exchange, from: Stage) -> Step {
    for stage in from.onwards() {
        let outcome = match stage {
            Stage::Limit => limit_stage::on_request(cx, ex),
            Stage::Budget => budget_stage::on_request(cx, ex),
            Stage::Coalesce => coalesce_stage::on_request(cx, ex),
            Stage::Batch => batch_stage::on_request(cx, ex),
            Stage::Route => route_stage::on_request(cx, ex),
        };
        match outcome {
            Outcome::Pass => {}
            Outcome::Park(wait) => match park(cx, ex, wait) {
                None => return Step::Hold,
                // It cannot wait: on to the next stage.
                Some(GiveUp::GoOn) => {}
                Some(GiveUp::Refuse) => {
                    let reply = self_wake::unavailable(ex.own_headers(cx.filter));
                    answer(cx, ex, &reply, Served::Refused);
                    return Step::Hold;
                }
            },
            Outcome::Answer(reply, served) => {
                answer(cx, ex, &reply, served);
                return Step::Hold;
            }
            Outcome::AwaitBody => {
                ex.enter(Event::AwaitBody, cx.host);
                return Step::Go;
            }
        }
    }
    ex.enter(Event::Forward, cx.host);
    // Upstream needs the request headers no more.
    ex.request = Default::default();
    Step::Go
}

/// Park `ex` in `wait` (its stage has indexed it). Where a request wakes
/// itself (Kong) it first makes its wake call; when it cannot, it does not
/// wait: it leaves the stage's index and the caller goes on as the
/// returned [`GiveUp`] says.
pub(super) fn park<H: Host>(cx: &mut Cx<'_, H>, ex: &mut Exchange, wait: Wait) -> Option<GiveUp> {
    if cx.host.wakes_itself() {
        match self_wake::arm(cx, ex.stream) {
            Some(token) => ex.wake.token = Some(token),
            None => {
                unpark(cx.worker, ex.stream, wait);
                return Some(self_wake::give_up(wait));
            }
        }
    }
    ex.enter(Event::Park(wait), cx.host);
    timer::set_tick(cx.filter, cx.worker, cx.host);
    None
}

/// Answer `ex` with `reply`; `true` when the host took it.
pub(super) fn answer<H: Host>(
    cx: &mut Cx<'_, H>,
    ex: &mut Exchange,
    reply: &Reply,
    served: Served,
) -> bool {
    if matches!(served, Served::Coalesced) {
        super::account_stage::note_answer(cx.filter, ex, &reply.body);
    }
    let sent = reply.send(cx.host, ex.stream);
    if let Err(e) = sent {
        // The client left (Envoy), or the host cannot answer this stream
        // from here (Kong): its `on_done` cleans up.
        cx.host.log(
            Level::Warn,
            &format!("[{}] could not answer ({}): {e:?}", ex.stream, reply.status),
        );
    }
    ex.enter(Event::Answer(served), cx.host);
    ex.request = Default::default();
    sent.is_ok()
}

/// Wake the parked request `stream`. Returns whether a local reply was
/// sent (callers bound those per host call: `timer::ACTIONS_PER_CALL`).
/// A stream that is gone, or not parked, is left alone.
pub(super) fn release<H: Host>(cx: &mut Cx<'_, H>, stream: StreamId, how: Release) -> bool {
    if !cx.host.can_wake(stream) {
        // Kong: it carries this out itself when its wake call answers.
        if let Some(ex) = cx.worker.requests.get_mut(&stream) {
            if ex.phase.is_parked() {
                self_wake::defer(ex, how);
            }
        }
        return false;
    }
    let Some(mut ex) = cx.worker.requests.remove(&stream) else {
        return false;
    };
    if let Phase::Parked(wait) = ex.phase {
        // Its wait is over: out of that stage's index, so a later pass of
        // the stage (the lease retry, run on every tick) cannot take it
        // for one of its own while it waits for something else. (Where a
        // request carries out its release later, Kong, it may have joined
        // another wait by then.)
        unpark(cx.worker, stream, wait);
    }
    let replied = match (ex.phase, how) {
        (Phase::Parked(_), Release::Answer(reply, served)) => answer(cx, &mut ex, &reply, served),
        (Phase::Parked(wait), Release::Resume) => {
            ex.enter(Event::Wake, cx.host);
            // This pass's clock: the stages it runs decide on the time it
            // goes on, not the time its headers came.
            ex.clock_ms = cx.host.now_ms();
            match advance(cx, &mut ex, wait.resumes_at()) {
                Step::Go => {
                    if let Err(e) = cx.host.wake(stream, Wake::Resume) {
                        cx.host
                            .log(Level::Warn, &format!("[{stream}] could not resume: {e:?}"));
                    }
                    false
                }
                Step::Hold => matches!(ex.phase, Phase::Answered(_)),
            }
        }
        (phase, _) => {
            cx.host.log(
                Level::Warn,
                &format!("[{stream}] release of a request in {phase:?} ignored"),
            );
            false
        }
    };
    cx.worker.requests.insert(stream, ex);
    replied
}

/// The headers every answer for `stream` carries (its request id, debug
/// headers), from its exchange; `None` when the stream is gone.
pub(super) fn own_headers<H: Host>(
    cx: &Cx<'_, H>,
    stream: StreamId,
) -> Option<Vec<(String, Vec<u8>)>> {
    cx.worker
        .requests
        .get(&stream)
        .map(|ex| ex.own_headers(cx.filter))
}

/// Take a parked request out of the index of the stage it waits in (its
/// stream ended).
pub(super) fn unpark(worker: &mut Worker, stream: StreamId, wait: Wait) {
    match wait {
        Wait::Limit => limit_stage::forget(worker, stream),
        Wait::Lease => budget_stage::forget(worker, stream),
        Wait::Leader => worker.waiters.forget(stream),
        Wait::Batch => batch_stage::forget(worker, stream),
    }
}
