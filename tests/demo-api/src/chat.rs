//! `POST /v1/chat/completions`: an OpenAI-style answer with a `usage`
//! object, so per-token pricing has something real to read. Token counts
//! are deterministic: prompt = words in the messages' contents (at least
//! 1), completion = `max_tokens` (default 16).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::api::ApiRequest;
use crate::{respond, AppState};

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
    let prompt = doc
        .get("messages")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .map(|c| c.split_whitespace().count() as u64)
                .sum::<u64>()
        })
        .unwrap_or(0)
        .max(1);
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
