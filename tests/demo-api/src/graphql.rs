//! `POST /graphql`: one operation object, or a JSON array of them.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::ApiRequest;
use crate::{respond, AppState};

/// Answer a GraphQL request: an object gets one answer (with the
/// request's own call number), an array gets an array of answers in the
/// same order, each operation with a call number of its own.
pub fn answer(state: &AppState, req: &ApiRequest) -> Response {
    let doc: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return graphql_error(&format!("invalid JSON body: {e}")),
    };
    match doc {
        Value::Object(_) => respond::json(StatusCode::OK, &operation(state, &doc, req.call)),
        Value::Array(ops) => {
            state.counters.record_graphql_batch(ops.len());
            let answers: Vec<OpAnswer<'_>> = ops
                .iter()
                .map(|op| operation(state, op, state.counters.next_call()))
                .collect();
            respond::json(StatusCode::OK, &answers)
        }
        _ => graphql_error("body must be an operation object or an array of them"),
    }
}

fn operation<'a>(state: &'a AppState, op: &Value, call: u64) -> OpAnswer<'a> {
    if !op.is_object() {
        return OpAnswer::Error(
            json!({ "errors": [{ "message": "operation must be an object" }] }),
        );
    }
    let id = op
        .get("variables")
        .and_then(|v| v.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    let answer = Answer {
        data: Data {
            quote: Quote {
                id,
                provider: &state.provider,
                call,
            },
        },
    };
    OpAnswer::Data(answer)
}

#[derive(Serialize)]
#[serde(untagged)]
enum OpAnswer<'a> {
    Data(Answer<'a>),
    Error(Value),
}

#[derive(Serialize)]
struct Answer<'a> {
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    quote: Quote<'a>,
}

#[derive(Serialize)]
struct Quote<'a> {
    id: Value,
    provider: &'a str,
    call: u64,
}

fn graphql_error(message: &str) -> Response {
    respond::json(
        StatusCode::BAD_REQUEST,
        &json!({ "errors": [{ "message": message }] }),
    )
}
