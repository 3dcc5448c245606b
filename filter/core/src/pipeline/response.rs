//! The hooks after a request's headers: its body (gathered for a batch),
//! the response (from upstream or an answer the filter made), and the end
//! of the stream. Each `match`es on the request's phase.

use crate::cost::model::Strategy;
use crate::headers::Headers;
use crate::host::Host;

use super::machine::{self, Cx, Outcome};
use super::phase::{Event, Phase, Served};
use super::{account_stage, cache_stage, coalesce_stage, route_stage, Exchange, Verdict};

impl Served {
    /// How an answer the filter made is priced (`None`: not at all).
    pub fn strategy(self) -> Option<Strategy> {
        match self {
            Served::Cache => Some(Strategy::Cache),
            Served::Coalesced => Some(Strategy::Coalesced),
            Served::Batched { .. } => Some(Strategy::Batched),
            // The upstream call was made: it is priced as one.
            Served::StaleOnError | Served::Revalidated => Some(Strategy::Upstream),
            Served::Refused => None,
        }
    }
}

impl Exchange {
    /// A piece of the request body. Only a request gathering its body for
    /// a batch is held; the rest flow.
    pub(super) fn on_request_body<H: Host>(
        &mut self,
        cx: &mut Cx<'_, H>,
        size: usize,
        end_of_stream: bool,
    ) -> Verdict {
        if self.phase == Phase::ReadingPrompt {
            return super::prompt_stage::on_request_body(cx, self, size, end_of_stream);
        }
        if self.phase != Phase::GatheringBody {
            return Verdict::Continue;
        }
        match super::batch_stage::on_request_body(cx, self, size, end_of_stream) {
            Outcome::AwaitBody => Verdict::Pause,
            Outcome::Park(wait) => match machine::park(cx, self, wait) {
                None => Verdict::Pause,
                // It cannot wait for its batch: it goes alone.
                Some(_) => self.forward(cx.host),
            },
            Outcome::Answer(reply, served) => {
                machine::answer(cx, self, &reply, served);
                Verdict::Pause
            }
            // Routing is the only stage after batching, and a batched
            // rule has no routing.
            Outcome::Pass => self.forward(cx.host),
        }
    }

    /// Its body is complete and it goes upstream as it is.
    fn forward(&mut self, host: &impl Host) -> Verdict {
        self.enter(Event::Forward, host);
        self.request = Default::default();
        Verdict::Continue
    }

    /// Response headers: from upstream, or of an answer the filter made.
    pub(super) fn on_response_headers<H: Host>(
        &mut self,
        cx: &mut Cx<'_, H>,
        end_of_stream: bool,
    ) -> Verdict {
        match self.phase {
            Phase::Answered(served) => {
                if let Served::Batched { size, index } = served {
                    self.cost.batch_share = cx
                        .filter
                        .config
                        .routes
                        .get(self.route)
                        .and_then(|r| r.cost.as_ref())
                        .map(|c| {
                            crate::cost::model::member_share(c, size as usize, index as usize)
                        });
                }
                if let Some(strategy) = served.strategy() {
                    account_stage::on_response_headers(cx, self, strategy, 200, false);
                }
                Verdict::Continue
            }
            // A response that came while the filter still held the
            // request (another filter answered it): nothing may wake it
            // later; its response passes like an upstream one.
            Phase::Parked(wait) => {
                machine::unpark(cx.worker, self.stream, wait);
                self.enter(Event::Forward, cx.host);
                self.upstream_response_headers(cx, end_of_stream)
            }
            Phase::ReadingPrompt => {
                self.enter(Event::Forward, cx.host);
                self.upstream_response_headers(cx, end_of_stream)
            }
            Phase::Upstream | Phase::GatheringBody | Phase::Deciding => {
                self.upstream_response_headers(cx, end_of_stream)
            }
        }
    }

    fn upstream_response_headers<H: Host>(
        &mut self,
        cx: &mut Cx<'_, H>,
        end_of_stream: bool,
    ) -> Verdict {
        let filter = cx.filter;
        let route = filter.config.routes.get(self.route);
        let stores = route.is_some_and(|r| r.cache.is_some() || r.coalesce.is_some());
        // Pricing by tokens reads the status (only a 2xx has a usage) and
        // whether the body is an event stream; a price per call needs
        // neither, so a priced rule without tokens reads no response
        // headers (issue 18: about 13,600 of Envoy's instructions on the
        // bench's J). Routing prices from its providers' rules, and reads
        // the status anyway.
        let priced = route.is_some_and(|r| r.cost.as_ref().is_some_and(|c| c.tokens.is_some()));
        // Routing learns each provider's health from the status.
        let routed = route.is_some_and(|r| r.routing.is_some());
        let all = if stores || priced || routed {
            cx.host.response_headers()
        } else {
            crate::header_list::HeaderList::default()
        };
        let status: u16 = Headers::new(&all)
            .get_str(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if stores {
            if let Some(served) =
                cache_stage::on_response_headers(cx, self, &all, status, end_of_stream)
            {
                // A stored answer replaces the upstream's: a stale one an
                // error, or the one a `304` confirmed.
                self.enter(Event::Answer(served), cx.host);
                return Verdict::Pause;
            }
            coalesce_stage::on_response_headers(cx, self, &all, status, end_of_stream);
        }
        route_stage::on_response_headers(filter, cx.host, self, status);
        // The same headers an answer of the filter's own would carry.
        let host = &mut *cx.host;
        self.each_own_header(filter, |name, value| {
            let _ = host.add_response_header(name, value);
        });
        let event_stream = Headers::new(&all).is_event_stream();
        account_stage::on_response_headers(cx, self, Strategy::Upstream, status, event_stream);
        Verdict::Continue
    }

    /// A piece of the response body from upstream.
    pub(super) fn on_response_body<H: Host>(
        &mut self,
        cx: &mut Cx<'_, H>,
        size: usize,
        end_of_stream: bool,
    ) -> Verdict {
        if matches!(self.phase, Phase::Answered(_)) {
            return Verdict::Continue;
        }
        let cache_wants = cache_stage::wants_body(self);
        let leader_wants = coalesce_stage::wants_body(self);
        let account_wants = account_stage::wants_body(cx.filter, self);
        if !cache_wants && !leader_wants && !account_wants {
            return Verdict::Continue;
        }
        let chunk = if size > 0 {
            cx.host.response_body(size)
        } else {
            Vec::new()
        };
        let (filter, worker, host) = (cx.filter, &mut *cx.worker, &mut *cx.host);
        if cache_wants {
            cache_stage::on_response_body(filter, worker, host, self, &chunk, end_of_stream);
        }
        if leader_wants {
            coalesce_stage::on_response_body(filter, worker, host, self, &chunk, end_of_stream);
        }
        if account_wants {
            account_stage::on_response_body(cx, self, &chunk, end_of_stream);
        }
        Verdict::Continue
    }

    /// The stream is over (answered, reset, or the client left): a parked
    /// request leaves its stage's index, a leader that never published
    /// lets its followers go, and the request is priced if it was not yet.
    pub(super) fn on_done<H: Host>(&mut self, cx: &mut Cx<'_, H>) {
        if let Phase::Parked(wait) = self.phase {
            machine::unpark(cx.worker, self.stream, wait);
        }
        coalesce_stage::on_done(cx.filter, cx.worker, cx.host, self);
        account_stage::on_done(cx, self);
    }
}
