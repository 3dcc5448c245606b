//! `GET|HEAD /api/{resource}/{id}`: the priced read, shaped by its query.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use crate::api::{header_value, ApiRequest};
use crate::query::{Query, MAX_SIZE};
use crate::{respond, AppState};

/// `Cache-Control` when the query does not set one.
pub const DEFAULT_CACHE_CONTROL: &str = "max-age=60";

/// Number of chunks of a `chunked=1` answer.
const CHUNKS: usize = 4;

#[derive(Serialize)]
struct Resource<'a> {
    resource: &'a str,
    id: &'a str,
    provider: &'a str,
    call: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    vary: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<BTreeMap<String, Option<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pad: Option<String>,
}

/// Build the answer for one resource read.
pub fn answer(
    state: &AppState,
    req: &ApiRequest,
    query: &Query,
    resource: &str,
    id: &str,
) -> Response {
    let size = match query.number::<usize>("size") {
        Ok(s) => s,
        Err(msg) => return respond::bad_request(&msg),
    };
    if size.is_some_and(|s| s > MAX_SIZE) {
        return respond::bad_request(&format!("size: at most {MAX_SIZE} bytes"));
    }
    let vary = query.get("vary");
    let mut doc = Resource {
        resource,
        id,
        provider: &state.provider,
        call: req.call,
        vary: vary.map(|list| {
            header_names(list)
                .map(|h| {
                    let value = header_value(&req.headers, &h).unwrap_or_default();
                    (h, value)
                })
                .collect()
        }),
        headers: None,
        pad: None,
    };
    let echoed: BTreeMap<String, Option<String>> = query
        .all("echo-header")
        .flat_map(header_names)
        .map(|h| {
            let value = header_value(&req.headers, &h);
            (h, value)
        })
        .collect();
    if !echoed.is_empty() {
        doc.headers = Some(echoed);
    }
    let binary = query.get("binary").is_some_and(|v| v == "1" || v == "true");
    let body = if binary {
        binary_body(req.call, size.unwrap_or(1024))
    } else {
        match padded(&mut doc, size) {
            Some(b) => b,
            None => return respond::error(StatusCode::INTERNAL_SERVER_ERROR, "serialization"),
        }
    };

    let chunked = query
        .get("chunked")
        .is_some_and(|v| v == "1" || v == "true");
    let mut resp = if chunked {
        Response::new(chunked_body(body))
    } else {
        Response::new(Body::from(body))
    };
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if binary {
            "application/octet-stream"
        } else {
            respond::JSON
        }),
    );
    let cache_control = query.get("cache-control").unwrap_or(DEFAULT_CACHE_CONTROL);
    let optional = [
        (header::CACHE_CONTROL, Some(cache_control)),
        (header::SET_COOKIE, query.get("set-cookie")),
        (header::VARY, vary),
        (HeaderName::from_static("cache-tag"), query.get("cache-tag")),
        (header::EXPIRES, query.get("expires")),
        (header::ETAG, query.get("etag")),
        (header::LAST_MODIFIED, query.get("last-modified")),
    ];
    for (name, value) in optional {
        let Some(value) = value else { continue };
        match HeaderValue::from_str(value) {
            Ok(v) => {
                headers.insert(name, v);
            }
            Err(_) => {
                return respond::bad_request(&format!("{name}: {value:?} is not a header value"))
            }
        }
    }
    // `header=name:value`, repeatable: any response field, each its own
    // line (so a name given twice is sent twice).
    for spec in query.all("header") {
        let Some((name, value)) = spec.split_once(':') else {
            return respond::bad_request(&format!("header={spec:?}: want name:value"));
        };
        match (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => return respond::bad_request(&format!("header={spec:?} is not a header")),
        }
    }
    if not_modified(req, query) {
        // A 304 carries the validators and caching fields, no body.
        *resp.body_mut() = Body::empty();
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp.headers_mut().remove(header::CONTENT_TYPE);
    }
    resp
}

/// Whether the request's `if-none-match` names the `etag=` this answer
/// has (or `*`), or, without `if-none-match`, its `if-modified-since` is
/// exactly the `last-modified=` it has. Only when the query asks for no
/// other status.
fn not_modified(req: &ApiRequest, query: &Query) -> bool {
    if query.get("status").is_some() {
        return false;
    }
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if let Some(inm) = header_value(&req.headers, "if-none-match") {
        let Some(etag) = query.get("etag") else {
            return false;
        };
        return inm
            .split(',')
            .any(|t| t.trim() == "*" || opaque(t) == opaque(etag));
    }
    match (
        header_value(&req.headers, "if-modified-since"),
        query.get("last-modified"),
    ) {
        (Some(ims), Some(lm)) => ims.trim() == lm.trim(),
        _ => false,
    }
}

/// Header names of a comma-separated list, trimmed and lowercased.
fn header_names(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

/// Serialize `doc`, padded to exactly `size` bytes when that is larger
/// than the unpadded body: with a `"pad":"xxx…"` field when there is room
/// for one (9 bytes at least), else with spaces before the closing brace.
/// `binary=1`: `size` bytes of every value (NUL and newline included),
/// starting at the call's number, so each call's body differs and none
/// ends in a newline unless that is where it falls.
fn binary_body(call: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (call as usize).wrapping_add(i).wrapping_mul(7) as u8)
        .collect()
}

fn padded(doc: &mut Resource<'_>, size: Option<usize>) -> Option<Vec<u8>> {
    let plain = respond::to_json(doc)?;
    let Some(size) = size.filter(|&s| s > plain.len()) else {
        return Some(plain);
    };
    doc.pad = Some(String::new());
    let with_empty_pad = respond::to_json(doc)?;
    if let Some(fill) = size.checked_sub(with_empty_pad.len()) {
        doc.pad = Some("x".repeat(fill));
        return respond::to_json(doc);
    }
    let mut body = plain;
    let close = body.pop()?; // the closing `}`
    body.resize(size - 1, b' ');
    body.push(close);
    Some(body)
}

/// A body streamed as several chunks without a length (HTTP/1.1
/// `transfer-encoding: chunked`), with a short pause between chunks so
/// they reach the peer as separate writes.
fn chunked_body(body: Vec<u8>) -> Body {
    let bytes = Bytes::from(body);
    let step = bytes.len().div_ceil(CHUNKS).max(1);
    let chunks: Vec<Bytes> = (0..bytes.len())
        .step_by(step)
        .map(|start| bytes.slice(start..(start + step).min(bytes.len())))
        .collect();
    let stream =
        futures_util::stream::unfold((chunks.into_iter(), true), |(mut rest, first)| async move {
            let chunk = rest.next()?;
            if !first {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Some((Ok::<_, Infallible>(chunk), (rest, false)))
        });
    Body::from_stream(stream)
}
