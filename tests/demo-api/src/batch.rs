//! `POST /api/batch`: the REST batch envelope.
//!
//! Request: `{"requests":[{"id":..,"method":"GET","path":"/api/quotes/7?x=1",
//! "headers":{"name":"value"},"body":"string or null"}]}`.
//! Answer: `{"responses":[{"id":..,"status":200,"headers":{..},"body":".."}]}`
//! in request order. Each member is answered by the same logic as a
//! standalone request, with its own call number.

use std::collections::BTreeMap;

use axum::body::{to_bytes, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{classify, execute_leaf, ApiRequest, Route, MAX_BODY};
use crate::{respond, AppState};

#[derive(Debug, Deserialize)]
struct Envelope {
    requests: Vec<Member>,
}

#[derive(Debug, Deserialize)]
struct Member {
    /// Echoed back as given (any JSON value; null when absent).
    #[serde(default)]
    id: Value,
    #[serde(default = "default_method")]
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// One slot of the answer.
#[derive(Debug, Serialize)]
struct Slot {
    id: Value,
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

#[derive(Debug, Serialize)]
struct Answer {
    responses: Vec<Slot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pad: Option<String>,
}

/// A member ready to run, or the status and error code of its slot.
enum Prepared {
    Run(Route, Box<ApiRequest>),
    Fail(StatusCode, &'static str),
}

/// Answer a REST batch.
pub async fn answer(state: &AppState, req: &ApiRequest) -> Response {
    let envelope: Envelope = match serde_json::from_slice(&req.body) {
        Ok(e) => e,
        Err(e) => {
            return respond::error_detail(
                StatusCode::BAD_REQUEST,
                "invalid_batch",
                &format!("invalid batch envelope: {e}"),
            )
        }
    };
    state.counters.record_batch();
    // Count the members and draw their call numbers in request order,
    // then run them concurrently (their delays overlap, as upstream).
    let prepared: Vec<(Value, Prepared)> = envelope
        .requests
        .into_iter()
        .map(|m| {
            let (path, _) = split_target(&m.path);
            state.counters.record_member(path);
            let id = m.id.clone();
            (id, prepare(state, m))
        })
        .collect();
    let runs = prepared.into_iter().map(|(id, p)| async move {
        match p {
            Prepared::Run(route, member) => {
                slot(id, execute_leaf(state, route, &member).await).await
            }
            Prepared::Fail(status, code) => slot(id, respond::error(status, code)).await,
        }
    });
    let mut responses = futures_util::future::join_all(runs).await;
    let faults = req.batch_faults;
    let keep = responses.len().saturating_sub(faults.drop_members);
    responses.truncate(keep);
    if faults.duplicate_members {
        let copies: Vec<Slot> = responses
            .iter()
            .map(|s| Slot {
                id: s.id.clone(),
                status: s.status,
                headers: s.headers.clone(),
                body: format!("duplicate of {}", s.id),
            })
            .collect();
        responses.extend(copies);
    }
    let pad = (faults.pad_bytes > 0).then(|| "x".repeat(faults.pad_bytes));
    respond::json(StatusCode::OK, &Answer { responses, pad })
}

fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

fn prepare(state: &AppState, m: Member) -> Prepared {
    let Ok(method) = Method::from_bytes(m.method.to_ascii_uppercase().as_bytes()) else {
        return Prepared::Fail(StatusCode::BAD_REQUEST, "bad_method");
    };
    let (path, query) = split_target(&m.path);
    let Some(route) = classify(&method, path) else {
        return Prepared::Fail(StatusCode::NOT_FOUND, "not_found");
    };
    if route == Route::Batch {
        return Prepared::Fail(StatusCode::BAD_REQUEST, "nested_batch");
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &m.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Prepared::Fail(StatusCode::BAD_REQUEST, "bad_header");
        };
        headers.append(name, value);
    }
    Prepared::Run(
        route,
        Box::new(ApiRequest {
            method,
            path: path.to_owned(),
            query: query.map(str::to_owned),
            headers,
            body: m.body.map(Bytes::from).unwrap_or_default(),
            call: state.counters.next_call(),
            batch_faults: Default::default(),
        }),
    )
}

async fn slot(id: Value, resp: Response) -> Slot {
    let (parts, body) = resp.into_parts();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    // Framing is the envelope's business (a HEAD member carries one).
    headers.remove("content-length");
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    Slot {
        id,
        status: parts.status.as_u16(),
        headers,
        body,
    }
}
