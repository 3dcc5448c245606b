//! The hooks after a request's headers: its body (gathered for a batch),
//! the response (from upstream or an answer the filter made), and the end
//! of the stream. Each is one transition of the [`Exchange`].

use crate::cost::model::Strategy;
use crate::headers::Headers;
use crate::host::{Host, StreamId};

use super::{
    account_stage, batch_stage, budget_stage, cache_stage, coalesce_stage, limit_stage, BatchFate,
    BatchStep, CoalesceStep, Exchange, Fate, Filter, Verdict, Worker,
};

impl Exchange {
    /// A piece of the request body. Only requests gathering their body for
    /// a batch are held; the rest flow.
    pub fn on_request_body(
        &mut self,
        filter: &Filter,
        worker: &mut Worker,
        host: &mut impl Host,
        size: usize,
        end_of_stream: bool,
    ) -> Verdict {
        if self.batch != BatchStep::AwaitBody {
            return Verdict::Continue;
        }
        if batch_stage::on_request_body(filter, worker, host, self, size, end_of_stream) {
            Verdict::Pause
        } else {
            Verdict::Continue
        }
    }

    /// Response headers: from upstream, or of an answer the filter made.
    pub fn on_response_headers(
        &mut self,
        filter: &Filter,
        worker: &mut Worker,
        host: &mut impl Host,
        stream: StreamId,
        end_of_stream: bool,
    ) -> Verdict {
        if self.answered_locally {
            if let Some(served) = self.cost.served {
                account_stage::on_response_headers(filter, worker, host, self, served, 200);
            }
            return Verdict::Continue;
        }
        if self.answered_by_coalescer(worker, stream) {
            account_stage::on_response_headers(
                filter,
                worker,
                host,
                self,
                Strategy::Coalesced,
                200,
            );
            return Verdict::Continue;
        }
        if self.answered_by_batch(filter, worker, stream) {
            account_stage::on_response_headers(filter, worker, host, self, Strategy::Batched, 200);
            return Verdict::Continue;
        }
        if budget_stage::take_outcome(worker, self) {
            // The timer refused it while it waited for a lease.
            self.answered_locally = true;
            return Verdict::Continue;
        }
        if self.limit_queued {
            if limit_stage::refused(worker, stream) {
                self.answered_locally = true;
                return Verdict::Continue;
            }
            self.limit = limit_stage::response_headers(self, worker, stream);
            self.limit_queued = false;
        }
        let route = filter.config.routes.get(self.route);
        let stores = route.is_some_and(|r| r.cache.is_some() || r.coalesce.is_some());
        let priced = route.is_some_and(|r| r.cost.is_some());
        let all = if stores || priced {
            host.response_headers()
        } else {
            Vec::new()
        };
        let status: u16 = Headers::new(&all)
            .get_str(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if stores {
            if cache_stage::on_response_headers(
                filter,
                worker,
                host,
                stream,
                self,
                &all,
                status,
                end_of_stream,
            ) {
                // A stale answer replaces an upstream error: the call was
                // made, so it is priced as one.
                self.answered_locally = true;
                self.cost.served = Some(Strategy::Upstream);
                return Verdict::Pause;
            }
            coalesce_stage::on_response_headers(
                filter,
                worker,
                host,
                self,
                status,
                &all,
                end_of_stream,
            );
        }
        let id_header = filter.config.identity.request_id_header.as_str();
        let _ = host.add_response_header(id_header, self.identity.request_id.as_bytes());
        for (name, value) in self.common_headers(filter) {
            let _ = host.add_response_header(name, &value);
        }
        if let Some(note) = &self.limit {
            let _ = host.add_response_header("ratelimit-policy", note.policy.as_bytes());
            let _ = host.add_response_header("ratelimit", note.ratelimit.as_bytes());
            if note.warning {
                let _ = host.add_response_header("x-optimizer-warning", b"rate-limit-exceeded");
            }
        }
        account_stage::on_response_headers(filter, worker, host, self, Strategy::Upstream, status);
        Verdict::Continue
    }

    /// A piece of the response body from upstream.
    pub fn on_response_body(
        &mut self,
        filter: &Filter,
        worker: &mut Worker,
        host: &mut impl Host,
        size: usize,
        end_of_stream: bool,
    ) -> Verdict {
        if self.answered_locally
            || matches!(self.coalesce, CoalesceStep::Follower)
            || self.batch == BatchStep::Member
        {
            return Verdict::Continue;
        }
        let cache_wants = cache_stage::wants_body(self);
        let leader_wants = coalesce_stage::wants_body(self);
        let account_wants = account_stage::wants_body(filter, self);
        if !cache_wants && !leader_wants && !account_wants {
            return Verdict::Continue;
        }
        let chunk = if size > 0 {
            host.response_body(size)
        } else {
            Vec::new()
        };
        if cache_wants {
            cache_stage::on_response_body(filter, worker, host, self, &chunk, end_of_stream);
        }
        if leader_wants {
            coalesce_stage::on_response_body(filter, worker, host, self, &chunk, end_of_stream);
        }
        if account_wants {
            account_stage::on_response_body(filter, worker, host, self, &chunk, end_of_stream);
        }
        Verdict::Continue
    }

    /// The stream is over (answered, reset, or the client left).
    pub fn on_done(
        &mut self,
        filter: &Filter,
        worker: &mut Worker,
        host: &mut impl Host,
        stream: StreamId,
    ) {
        coalesce_stage::on_done(filter, worker, host, stream, self);
        limit_stage::forget(worker, stream);
        batch_stage::forget(worker, stream);
        budget_stage::forget(filter, worker, host, stream);
        account_stage::on_done(filter, worker, host, self);
    }

    /// A batch member answered from its batch needs nothing more; one
    /// that was released goes on as an ordinary request.
    fn answered_by_batch(&mut self, filter: &Filter, worker: &Worker, stream: StreamId) -> bool {
        if self.batch != BatchStep::Member {
            return false;
        }
        match worker.batcher.fates.get(&stream) {
            Some(BatchFate::Answered { size, index }) => {
                let cost = filter
                    .config
                    .routes
                    .get(self.route)
                    .and_then(|r| r.cost.as_ref());
                self.cost.batch_share = cost
                    .map(|c| crate::cost::model::member_share(c, *size as usize, *index as usize));
                true
            }
            _ => {
                self.batch = BatchStep::None;
                false
            }
        }
    }

    /// A follower answered by the coalescer needs nothing more; one that
    /// was released goes on as an ordinary request.
    fn answered_by_coalescer(&mut self, worker: &Worker, stream: StreamId) -> bool {
        if !matches!(self.coalesce, CoalesceStep::Follower) {
            return false;
        }
        match worker.waiters.fates.get(&stream) {
            Some(Fate::Answered) => true,
            _ => {
                self.coalesce = CoalesceStep::None;
                false
            }
        }
    }
}
