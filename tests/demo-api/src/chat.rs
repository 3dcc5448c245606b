//! `POST /v1/chat/completions`: an OpenAI-style answer with a `usage`
//! object, so per-token pricing has something real to read. Token counts
//! are deterministic: prompt = words in the messages' contents (at least
//! 1), completion = `max_tokens` (default 16).
//!
//! # Streaming
//!
//! With `"stream": true` in the body the answer is `200`,
//! `content-type: text/event-stream`, `cache-control: no-cache`, and a
//! body of server-sent events produced one at a time (each is handed to
//! the connection as it is made; nothing is buffered up front):
//!
//! - N content chunks, N = `max_tokens`, else `max_completion_tokens`,
//!   default 16, at most [`MAX_STREAM_TOKENS`]. Chunk `i` (from 0) is
//!   `data: {"id":"chatcmpl-<call>","object":"chat.completion.chunk",
//!   "created":0,"model":..,"provider":..,"choices":[{"index":0,
//!   "delta":{"content":"tok<i> "},"finish_reason":null}]}` + `\n\n`;
//!   the first delta also has `"role":"assistant"` (before `content`),
//!   the last chunk has `"finish_reason":"stop"`. With N = 0 there is one
//!   chunk, with role, empty content and `"stop"`.
//! - If `stream_options.include_usage` is `true`: one chunk with
//!   `"choices":[]` and `"usage":{"prompt_tokens":P,"completion_tokens":N,
//!   "total_tokens":P+N}`, P counted as in the non-streamed answer.
//! - `data: [DONE]` + `\n\n`.
//!
//! `created` is always 0, so two answers to the same body differ only in
//! the call number inside `id`.
//!
//! Request headers (read only when streaming):
//!
//! - `x-demo-chunk-delay-ms: D` (0..=[`MAX_CHUNK_DELAY_MS`], default 0):
//!   pause D ms before every event but the first.
//! - `x-demo-cut-after: K`: send K content chunks (all of them if K >= N),
//!   then fail the body: no usage chunk, no `[DONE]`. Over HTTP/1.1
//!   (`transfer-encoding: chunked`) the server closes the connection
//!   without the body's terminating `0\r\n\r\n`, so a client or proxy
//!   sees an incomplete chunked body, never a clean end. In process
//!   (`oneshot`) the body yields K frames, then an error. (Over h2c hyper
//!   resets the stream instead; no test covers that.)
//!
//! A bad value of either header is a 400 naming the header.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::{header_value, ApiRequest};
use crate::counters::Counters;
use crate::{respond, AppState};

/// Largest number of content chunks of a streamed answer.
pub const MAX_STREAM_TOKENS: u64 = 4096;
/// Largest `x-demo-chunk-delay-ms`.
pub const MAX_CHUNK_DELAY_MS: u64 = 10_000;
/// Request header: pause between streamed events (ms).
pub const CHUNK_DELAY_HEADER: &str = "x-demo-chunk-delay-ms";
/// Request header: cut the stream off after this many content chunks.
pub const CUT_AFTER_HEADER: &str = "x-demo-cut-after";

pub fn answer(state: &AppState, req: &ApiRequest) -> Response {
    let doc: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return respond::bad_request(&format!("invalid JSON body: {e}")),
    };
    let model = doc
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("demo-small")
        .to_owned();
    let prompt = prompt_tokens(&doc);
    if doc.get("stream").and_then(Value::as_bool) == Some(true) {
        return stream(state, req, &doc, model, prompt);
    }
    let completion = doc.get("max_tokens").and_then(Value::as_u64).unwrap_or(16);
    respond::json(
        StatusCode::OK,
        &json!({
            "id": format!("chatcmpl-{}", req.call),
            "object": "chat.completion",
            "model": model,
            "provider": &*state.provider,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        }),
    )
}

/// Prompt tokens: words in the messages' contents, at least 1.
pub fn prompt_tokens(doc: &Value) -> u64 {
    doc.get("messages")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .map(|c| c.split_whitespace().count() as u64)
                .sum::<u64>()
        })
        .unwrap_or(0)
        .max(1)
}

/// Completion tokens of a streamed answer (= its content chunks).
fn stream_tokens(doc: &Value) -> u64 {
    doc.get("max_tokens")
        .and_then(Value::as_u64)
        .or_else(|| doc.get("max_completion_tokens").and_then(Value::as_u64))
        .unwrap_or(16)
        .min(MAX_STREAM_TOKENS)
}

/// Header `name` as a number `<= max`; `Ok(None)` if absent.
fn header_number(req: &ApiRequest, name: &str, max: u64) -> Result<Option<u64>, String> {
    let Some(raw) = header_value(&req.headers, name) else {
        return Ok(None);
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(format!(
            "{name}: {raw:?} is not a whole number from 0 to {max}"
        )),
    }
}

/// Everything one stream needs to make its events.
struct StreamPlan {
    id: String,
    model: String,
    provider: Arc<str>,
    prompt: u64,
    tokens: u64,
    include_usage: bool,
    delay: Duration,
    cut_after: Option<u64>,
    counters: Arc<Counters>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    provider: &'a str,
    choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Choice {
    index: u32,
    delta: Delta,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    content: String,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

/// What the stream does next.
enum Step {
    /// Content chunk `i`.
    Content(u64),
    Usage,
    Done,
    /// Fail the body (after `x-demo-cut-after` chunks).
    Cut,
    End,
}

/// The error that ends a cut-off stream.
#[derive(Debug)]
pub struct StreamCut;

impl std::fmt::Display for StreamCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stream cut off by x-demo-cut-after")
    }
}

impl std::error::Error for StreamCut {}

impl StreamPlan {
    /// Content chunks actually sent (at least one, carrying `"stop"`).
    fn content_chunks(&self) -> u64 {
        self.tokens.max(1)
    }

    fn chunk(&self, choices: Vec<Choice>, usage: Option<Usage>) -> Bytes {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: 0,
            model: &self.model,
            provider: &self.provider,
            choices,
            usage,
        };
        let json = serde_json::to_string(&chunk).unwrap_or_default();
        Bytes::from(format!("data: {json}\n\n"))
    }

    fn content(&self, i: u64) -> Bytes {
        let content = if self.tokens == 0 {
            String::new()
        } else {
            format!("tok{i} ")
        };
        let last = i + 1 == self.content_chunks();
        self.chunk(
            vec![Choice {
                index: 0,
                delta: Delta {
                    role: (i == 0).then_some("assistant"),
                    content,
                },
                finish_reason: last.then_some("stop"),
            }],
            None,
        )
    }

    fn usage(&self) -> Bytes {
        self.chunk(
            Vec::new(),
            Some(Usage {
                prompt_tokens: self.prompt,
                completion_tokens: self.tokens,
                total_tokens: self.prompt + self.tokens,
            }),
        )
    }

    /// The step after content chunk `i` was sent.
    fn after_content(&self, i: u64) -> Step {
        let sent = i + 1;
        if self
            .cut_after
            .is_some_and(|k| sent >= k || sent >= self.content_chunks())
        {
            Step::Cut
        } else if sent < self.content_chunks() {
            Step::Content(sent)
        } else if self.include_usage {
            Step::Usage
        } else {
            Step::Done
        }
    }
}

fn stream(state: &AppState, req: &ApiRequest, doc: &Value, model: String, prompt: u64) -> Response {
    let delay = match header_number(req, CHUNK_DELAY_HEADER, MAX_CHUNK_DELAY_MS) {
        Ok(d) => Duration::from_millis(d.unwrap_or(0)),
        Err(msg) => return respond::bad_request(&msg),
    };
    let cut_after = match header_number(req, CUT_AFTER_HEADER, u64::MAX) {
        Ok(k) => k,
        Err(msg) => return respond::bad_request(&msg),
    };
    let include_usage = doc
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    let plan = Arc::new(StreamPlan {
        id: format!("chatcmpl-{}", req.call),
        model,
        provider: state.provider.clone(),
        prompt,
        tokens: stream_tokens(doc),
        include_usage,
        delay,
        cut_after,
        counters: state.counters.clone(),
    });
    // K = 0: nothing at all is sent before the cut.
    let first = if cut_after == Some(0) {
        Step::Cut
    } else {
        Step::Content(0)
    };
    let events = futures_util::stream::unfold((first, true), move |(step, first)| {
        let plan = plan.clone();
        async move {
            if matches!(step, Step::End) {
                return None;
            }
            if matches!(step, Step::Cut) {
                // Be pending once so hyper flushes the chunks it holds:
                // failing the body straight away dropped them (the
                // cut-off test saw fewer than K chunks).
                tokio::task::yield_now().await;
                return Some((Err(StreamCut), (Step::End, false)));
            }
            if !first && !plan.delay.is_zero() {
                tokio::time::sleep(plan.delay).await;
            }
            let (bytes, next) = match step {
                Step::Content(i) => (plan.content(i), plan.after_content(i)),
                Step::Usage => (plan.usage(), Step::Done),
                Step::Done => (Bytes::from_static(b"data: [DONE]\n\n"), Step::End),
                Step::Cut | Step::End => return None,
            };
            plan.counters.record_stream_event();
            Some((Ok::<_, StreamCut>(bytes), (next, false)))
        }
    });
    let mut resp = Response::new(Body::from_stream(events));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
