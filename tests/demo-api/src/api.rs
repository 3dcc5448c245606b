//! The API routes: classification, counting, faults and dispatch.
//!
//! Every request that is not a control route (`/__*`, `/healthz`) lands
//! in [`entry`]. Batch members skip counting-as-a-call and faults but are
//! otherwise answered by the same [`execute_leaf`] as standalone requests.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use crate::query::{Common, Query};
use crate::{batch, chat, echo, graphql, resource, respond, server, AppState};

/// Largest request body read (bytes).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// Which API route a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET|HEAD /api/{resource}/{id}`.
    Resource { resource: String, id: String },
    /// `POST|PUT|PATCH|DELETE /api/{*path}`: echoed.
    Write,
    /// Any method on `/echo/{*path}`: echoed.
    Echo,
    /// `POST /api/batch`.
    Batch,
    /// `POST /graphql`.
    Graphql,
    /// `POST /v1/chat/completions` (OpenAI-style, with `usage`; server-sent
    /// events with `"stream": true`).
    Chat,
}

/// The API route of `method` and `path`, if any.
pub fn classify(method: &Method, path: &str) -> Option<Route> {
    if path == "/api/batch" && method == Method::POST {
        return Some(Route::Batch);
    }
    if path == "/graphql" && method == Method::POST {
        return Some(Route::Graphql);
    }
    if path == "/v1/chat/completions" && method == Method::POST {
        return Some(Route::Chat);
    }
    if path.starts_with("/echo/") {
        return Some(Route::Echo);
    }
    let rest = path.strip_prefix("/api/")?;
    if rest.is_empty() {
        return None;
    }
    match *method {
        Method::GET | Method::HEAD => {
            let (resource, id) = rest.split_once('/')?;
            if resource.is_empty() || id.is_empty() || id.contains('/') {
                return None;
            }
            Some(Route::Resource {
                resource: crate::query::percent_decode(resource),
                id: crate::query::percent_decode(id),
            })
        }
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => Some(Route::Write),
        _ => None,
    }
}

/// One request to answer, standalone or a batch member.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Path without the query string.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Call sequence number drawn for this request.
    pub call: u64,
    /// What faults do to a REST batch answer.
    pub batch_faults: crate::faults::BatchFaults,
}

/// Fallback handler: every non-control request.
pub async fn entry(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let Some(route) = classify(req.method(), &path) else {
        return respond::not_found();
    };
    state.counters.record_request(&path);
    let call = state.counters.next_call();
    let fault = state.faults.evaluate(&path);
    if !fault.latency.is_zero() {
        tokio::time::sleep(fault.latency).await;
    }
    if fault.abort {
        return server::abort_response();
    }
    if let Some(status) = fault.error_status {
        return respond::json(
            status,
            &serde_json::json!({ "error": "injected_fault", "status": status.as_u16() }),
        );
    }
    if fault.garbage {
        return respond::json_bytes(StatusCode::OK, b"not json{{".to_vec());
    }
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return respond::bad_request(&format!("cannot read request body: {e}")),
    };
    let req = ApiRequest {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        call,
        batch_faults: fault.batch,
    };
    execute(&state, route, req).await
}

/// Answer `req` for `route`, honouring `status=` and `delay_ms=`.
pub async fn execute(state: &AppState, route: Route, req: ApiRequest) -> Response {
    if route != Route::Batch {
        return execute_leaf(state, route, &req).await;
    }
    let common = match Common::from_query(&Query::parse(req.query.as_deref())) {
        Ok(c) => c,
        Err(msg) => return respond::bad_request(&msg),
    };
    if let Some(delay) = common.delay {
        tokio::time::sleep(delay).await;
    }
    let mut resp = batch::answer(state, &req).await;
    if let Some(status) = common.status {
        *resp.status_mut() = status;
    }
    resp
}

/// Answer any route but a REST batch (the part batch members share).
pub async fn execute_leaf(state: &AppState, route: Route, req: &ApiRequest) -> Response {
    let query = Query::parse(req.query.as_deref());
    let common = match Common::from_query(&query) {
        Ok(c) => c,
        Err(msg) => return respond::bad_request(&msg),
    };
    if let Some(delay) = common.delay {
        tokio::time::sleep(delay).await;
    }
    let mut resp = match route {
        Route::Resource { resource, id } => resource::answer(state, req, &query, &resource, &id),
        Route::Write | Route::Echo => echo::answer(state, req),
        Route::Graphql => graphql::answer(state, req),
        Route::Chat => chat::answer(state, req),
        Route::Batch => respond::error(StatusCode::BAD_REQUEST, "nested_batch"),
    };
    if let Some(status) = common.status {
        *resp.status_mut() = status;
    }
    if req.method == Method::HEAD {
        strip_body(&mut resp);
    }
    resp
}

/// HEAD: keep the headers (and the length of a sized body), drop the body.
fn strip_body(resp: &mut Response) {
    use axum::body::HttpBody;
    if let Some(len) = resp.body().size_hint().exact() {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    *resp.body_mut() = Body::empty();
}

/// All values of request header `name`, joined by `, `; `None` if absent.
pub fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.join(", "))
    }
}
