//! The batch call: the timer sends each batch that is full or whose
//! window ended as one upstream call, and its answer is fanned out to the
//! members (or, when the call failed or a part is missing, the members go
//! upstream alone).

use crate::batch::codec::{self, Member};
use crate::host::{Callout, Host, Level};

use super::batch_stage::{self, format, InFlight, Pending};
use super::machine::{own_headers, release, Cx, Release, Reply};
use super::phase::Served;
use super::{Filter, Worker};

/// The timer: send every batch whose window ended or that is full.
/// Returns nothing; answers come with the call's response.
pub fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    let now = host.now_ms();
    expire(filter, worker, host, now);
    for (route, members) in std::mem::take(&mut worker.batcher.ready) {
        flush(filter, worker, host, route, members);
    }
    let due: Vec<usize> = worker
        .batcher
        .open
        .iter()
        .filter(|(_, b)| now >= b.flush_at_ms)
        .map(|(r, _)| *r)
        .collect();
    for route in due {
        if let Some(batch) = worker.batcher.open.remove(&route) {
            flush(filter, worker, host, route, batch.members);
        }
    }
}

fn flush(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    route: usize,
    members: Vec<Pending>,
) {
    let Some(rule) = batch_stage::rule(filter, route) else {
        return;
    };
    let counters = filter.counters(route).batch;
    let now = host.now_ms();
    let list: Vec<Member> = members.iter().map(|p| p.member.clone()).collect();
    let body = codec::encode(format(rule.format), &list);
    let length = body.len().to_string();
    let call = Callout {
        target: &rule.upstream,
        headers: vec![
            (":method", b"POST"),
            (":path", rule.path.as_bytes()),
            (":authority", rule.authority.as_bytes()),
            ("content-type", b"application/json"),
            ("content-length", length.as_bytes()),
        ],
        body: Some(&body),
        timeout_ms: rule.timeout_ms,
    };
    counters.batches.add(host, 1);
    counters.members.add(host, members.len() as i64);
    counters.size_bucket(members.len()).add(host, 1);
    counters.wait_ms.add(
        host,
        members
            .iter()
            .map(|m| now.saturating_sub(m.joined_ms) as i64)
            .sum(),
    );
    match host.http_call(&call) {
        Ok(token) => {
            worker.batcher.in_flight.insert(
                token,
                InFlight {
                    route,
                    members,
                    deadline_ms: now + rule.timeout_ms + ANSWER_GRACE_MS,
                },
            );
        }
        Err(e) => {
            host.log(
                Level::Warn,
                &format!("batch call to {} failed to start: {e:?}", rule.upstream),
            );
            counters.fallback_failed.add(host, members.len() as i64);
            go_alone(filter, worker, host, members);
        }
    }
}

/// How long past its timeout a batch call may still be answered by the
/// host before its members stop waiting for it.
pub(super) const ANSWER_GRACE_MS: u64 = 1_000;

/// Calls the host has not answered by their deadline: their members go
/// alone, and a late answer finds no flight and is dropped. Envoy answers
/// every call by its timeout; Kong's engine (3bed2783) reads a large
/// answer for as long as it keeps coming (a 50 MB one for over 30 s on
/// loopback), and its timeout does not cut that short.
fn expire(filter: &Filter, worker: &mut Worker, host: &mut impl Host, now: u64) {
    let late: Vec<u32> = worker
        .batcher
        .in_flight
        .iter()
        .filter(|(_, f)| now >= f.deadline_ms)
        .map(|(t, _)| *t)
        .collect();
    for token in late {
        let Some(flight) = worker.batcher.in_flight.remove(&token) else {
            continue;
        };
        host.log(
            Level::Warn,
            &format!(
                "batch call {token} unanswered past its timeout: its {} members go alone",
                flight.members.len()
            ),
        );
        let counters = filter.counters(flight.route).batch;
        counters
            .fallback_failed
            .add(host, flight.members.len() as i64);
        go_alone(filter, worker, host, flight.members);
    }
}

/// The members go upstream alone (the batch call failed).
fn go_alone(filter: &Filter, worker: &mut Worker, host: &mut impl Host, members: Vec<Pending>) {
    let mut cx = Cx {
        filter,
        worker,
        host,
    };
    for m in members {
        release(&mut cx, m.stream, Release::Resume);
    }
}

/// The answer to a batch call.
pub fn on_callout_response(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    token: u32,
    body_size: usize,
) {
    let Some(flight) = worker.batcher.in_flight.remove(&token) else {
        return;
    };
    let route = flight.route;
    let Some(rule) = batch_stage::rule(filter, route) else {
        return;
    };
    let counters = filter.counters(route).batch;
    let status = host.callout_status();
    if !(200..300).contains(&status) {
        // Failed or timed out (no headers at all): everyone goes alone.
        counters
            .fallback_failed
            .add(host, flight.members.len() as i64);
        go_alone(filter, worker, host, flight.members);
        return;
    }
    let body = host.callout_response_body(body_size);
    let ids: Vec<String> = flight.members.iter().map(|m| m.id.clone()).collect();
    let answers = codec::decode(format(rule.format), &body, &ids);
    let size = flight.members.len() as u32;
    let mut cx = Cx {
        filter,
        worker,
        host,
    };
    for (index, (m, answer)) in flight.members.into_iter().zip(answers).enumerate() {
        let Some(a) = answer else {
            counters.fallback_missing.add(cx.host, 1);
            release(&mut cx, m.stream, Release::Resume);
            continue;
        };
        // A member whose client left has no exchange: skip it.
        let Some(own) = own_headers(&cx, m.stream) else {
            continue;
        };
        let mut headers: Vec<(String, Vec<u8>)> = a
            .headers
            .into_iter()
            .filter(|(k, _)| crate::cache::reply::storable_header(k))
            .collect();
        headers.push(("x-cache".into(), b"BATCHED".to_vec()));
        headers.extend(own);
        let head = m.member.method == "HEAD";
        let reply = Reply {
            status: a.status,
            headers,
            body: if head { Vec::new() } else { a.body },
        };
        let served = Served::Batched {
            size,
            index: index as u32,
        };
        release(&mut cx, m.stream, Release::Answer(reply, served));
    }
}
