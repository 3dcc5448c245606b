//! The spend report (DESIGN.md step 8, second half): the worker's buffer
//! of spend events goes to `cost-control`'s `POST /v1/spend` from the
//! timer, one batch at a time; its answer settles the batch; at shutdown
//! what is left goes to the log. Also the one way the pipeline calls
//! cost-control ([`control_call`], [`control_get`]).

use crate::config::Accounting;
use crate::cost::spend::{spill, FlushOutcome};
use crate::host::{Callout, Host, Level};

use super::{Filter, Worker};

/// The timer: send the next spend batch when one is due (or a failed one
/// once its backoff is over).
pub(super) fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    let Some(acc) = &filter.config.accounting else {
        return;
    };
    let now = host.now_ms();
    let jitter = worker.ids.next_u64();
    let Some(buffer) = worker.accountant.spend.as_mut() else {
        return;
    };
    if buffer.expire(
        now,
        acc.timeout_ms + 1_000,
        jitter,
        acc.backoff_min_ms,
        acc.backoff_max_ms,
    ) {
        worker.accountant.spend_call = None;
        filter.metrics.spend.failures.add(host, 1);
    }
    let Some(batch) = buffer.next_batch(now, acc.flush_ms, acc.max_events as usize) else {
        return;
    };
    let call = control_call(acc, "/v1/spend", &batch.body);
    match host.http_call(&call.callout()) {
        Ok(token) => {
            worker.accountant.spend_call = Some(token);
            filter.metrics.spend.batches.add(host, 1);
        }
        Err(e) => {
            host.log(Level::Warn, &format!("spend report could not start: {e:?}"));
            buffer.on_result(
                now,
                FlushOutcome::Failed,
                jitter,
                acc.backoff_min_ms,
                acc.backoff_max_ms,
            );
            filter.metrics.spend.failures.add(host, 1);
        }
    }
}

/// The filter ends (see `hooks::on_shutdown`): every batch the worker
/// holds, the one out included, is written to the log, part by part.
pub(super) fn on_shutdown(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    let Some(acc) = &filter.config.accounting else {
        return;
    };
    let Some(buffer) = worker.accountant.spend.as_mut() else {
        return;
    };
    worker.accountant.spend_call = None;
    let batches = buffer.spill(acc.max_events as usize);
    if batches.is_empty() {
        return;
    }
    let events: usize = batches.iter().map(|b| b.events).sum();
    for batch in &batches {
        for line in spill::lines(&batch.batch_id, &batch.body) {
            host.log(Level::Error, &line);
        }
    }
    host.log(
        Level::Error,
        &format!(
            "the filter stops with {} unsent spend batches ({events} events): written to this log; `cost-control spend replay <log>` sends them",
            batches.len()
        ),
    );
}

/// A call to cost-control: a JSON POST with the gateway's bearer token.
pub(super) fn control_call<'a>(
    acc: &'a Accounting,
    path: &'a str,
    body: &'a [u8],
) -> ControlCall<'a> {
    ControlCall {
        acc,
        path,
        body: Some(body),
        auth: format!("Bearer {}", acc.token),
        length: body.len().to_string(),
    }
}

/// A GET to cost-control with the gateway's bearer token.
pub(super) fn control_get<'a>(acc: &'a Accounting, path: &'a str) -> ControlCall<'a> {
    ControlCall {
        acc,
        path,
        body: None,
        auth: format!("Bearer {}", acc.token),
        length: String::new(),
    }
}

/// The owned parts of a cost-control call ([`ControlCall::callout`]
/// borrows them).
pub(super) struct ControlCall<'a> {
    acc: &'a Accounting,
    path: &'a str,
    /// `None`: a GET.
    body: Option<&'a [u8]>,
    auth: String,
    length: String,
}

impl ControlCall<'_> {
    pub(super) fn callout(&self) -> Callout<'_> {
        let mut headers: Vec<(&str, &[u8])> = vec![
            (
                ":method",
                if self.body.is_some() { b"POST" } else { b"GET" },
            ),
            (":path", self.path.as_bytes()),
            (":authority", self.acc.authority.as_bytes()),
            ("authorization", self.auth.as_bytes()),
        ];
        if self.body.is_some() {
            headers.push(("content-type", b"application/json"));
            headers.push(("content-length", self.length.as_bytes()));
        }
        Callout {
            target: &self.acc.cost_control,
            headers,
            body: self.body,
            timeout_ms: self.acc.timeout_ms,
        }
    }
}

/// Whether `token` is the spend batch's callout; if so, handle its answer.
pub(super) fn on_callout_response(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    token: u32,
    body_size: usize,
) -> bool {
    if worker.accountant.spend_call != Some(token) {
        return false;
    }
    worker.accountant.spend_call = None;
    let Some(acc) = &filter.config.accounting else {
        return true;
    };
    let status = host.callout_status();
    let outcome = match status {
        200..=299 => FlushOutcome::Accepted,
        400 | 413 | 422 => FlushOutcome::Rejected,
        _ => FlushOutcome::Failed,
    };
    let now = host.now_ms();
    let jitter = worker.ids.next_u64();
    let Some(buffer) = worker.accountant.spend.as_mut() else {
        return true;
    };
    let parked = buffer.on_result(now, outcome, jitter, acc.backoff_min_ms, acc.backoff_max_ms);
    match outcome {
        FlushOutcome::Accepted => {}
        FlushOutcome::Rejected => {
            let why = String::from_utf8_lossy(&host.callout_response_body(body_size))
                .chars()
                .take(300)
                .collect::<String>();
            let (micros, requests) = buffer.parked();
            host.log(
                Level::Error,
                &format!(
                    "cost-control refused a spend batch ({status}: {why}); the money of its {parked} requests is parked per tenant and sent again alone (parked now: {micros} micros, {requests} requests)"
                ),
            );
            filter.metrics.spend.rejected.add(host, parked as i64);
        }
        FlushOutcome::Failed => {
            host.log(
                Level::Info,
                &format!("spend report failed ({status}); kept for a retry"),
            );
            filter.metrics.spend.failures.add(host, 1);
        }
    }
    true
}
