//! Streamed chat completions (`"stream": true`) against a real socket,
//! plus in-process checks of the token counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use axum::http::StatusCode;
use common::*;
use demo_api::{app, server, AppState};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct Running {
    addr: SocketAddr,
    state: AppState,
    _stop: oneshot::Sender<()>,
}

async fn start(provider: &str) -> Running {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let state = AppState::new(provider);
    tokio::spawn(server::serve(listener, app(state.clone()), async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        state,
        _stop: stop,
    }
}

/// Open a connection and send one `POST /v1/chat/completions` with
/// `Connection: close`, extra `headers` and `body`.
async fn send_chat(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

/// A raw HTTP/1.1 answer split into its parts.
struct Wire {
    status: u16,
    /// Header lines, names lower-cased.
    headers: Vec<(String, String)>,
    /// The body, de-chunked if `transfer-encoding: chunked`.
    body: String,
    /// Chunked body ended by its `0\r\n\r\n` terminator (or not chunked).
    complete: bool,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `data:` payloads of the body's events, in order.
    fn events(&self) -> Vec<String> {
        self.body
            .split_terminator("\n\n")
            .map(|e| {
                e.strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                    .to_owned()
            })
            .collect()
    }
}

/// Parse what was read so far; `None` until the header block is complete.
fn parse(raw: &[u8]) -> Option<Wire> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if !chunked {
        return Some(Wire {
            status,
            headers,
            body: rest.to_owned(),
            complete: true,
        });
    }
    let mut body = String::new();
    let mut rest = rest;
    let mut complete = false;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            complete = after == "\r\n";
            break;
        }
        if after.len() < size + 2 {
            // Partial chunk: keep what arrived.
            body.push_str(&after[..after.len().min(size)]);
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    Some(Wire {
        status,
        headers,
        body,
        complete,
    })
}

/// Read until the peer closes; return the parsed answer.
async fn read_all(mut s: TcpStream) -> Wire {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    parse(&out).unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&out)))
}

async fn chat(addr: SocketAddr, headers: &[(&str, &str)], body: &Value) -> Wire {
    read_all(send_chat(addr, headers, &body.to_string()).await).await
}

fn json_events(w: &Wire) -> Vec<Value> {
    w.events()
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test]
async fn chunks_arrive_before_the_last_is_produced() {
    let srv = start("primary").await;
    let body = json!({"model":"m","stream":true,"max_tokens":6,
                      "messages":[{"role":"user","content":"hi"}]});
    let mut s = send_chat(
        srv.addr,
        &[("x-demo-chunk-delay-ms", "100")],
        &body.to_string(),
    )
    .await;
    // Read until the first whole event is in.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let first = loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
        if let Some(w) = parse(&raw) {
            if w.body.contains("\n\n") {
                break w;
            }
        }
    };
    // 6 content chunks + [DONE] = 7 events: the server had not produced
    // the last ones when the first was already read by the client.
    let produced = srv.state.counters.stream_events();
    assert!(
        produced < 7,
        "all {produced} events produced before the first arrived"
    );
    assert!(!first.body.contains("[DONE]"), "{}", first.body);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("text/event-stream"));
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    assert_eq!(first.header("transfer-encoding"), Some("chunked"));

    let _ = s.read_to_end(&mut raw).await;
    let all = parse(&raw).unwrap();
    assert!(all.complete, "stream must end cleanly: {}", all.body);
    let events = all.events();
    assert_eq!(events.len(), 7, "{events:?}");
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(srv.state.counters.stream_events(), 7);
    let chunks = json_events(&all);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], "chatcmpl-1");
        assert_eq!(c["model"], "m");
        assert_eq!(c["provider"], "primary");
        assert_eq!(c["created"], 0);
        assert_eq!(c["choices"][0]["delta"]["content"], format!("tok{i} "));
        let role = &c["choices"][0]["delta"]["role"];
        assert_eq!(*role == json!("assistant"), i == 0, "chunk {i}: {c}");
        let finish = &c["choices"][0]["finish_reason"];
        assert_eq!(*finish == json!("stop"), i == 5, "chunk {i}: {c}");
        assert_eq!(*finish == Value::Null, i != 5, "chunk {i}: {c}");
        assert!(c.get("usage").is_none(), "{c}");
    }
}

#[tokio::test]
async fn exact_bytes_and_determinism() {
    let srv = start("primary").await;
    let body = json!({"model":"gpt-x","stream":true,"max_tokens":2,
                      "stream_options":{"include_usage":true},
                      "messages":[{"role":"user","content":"one two three"}]});
    let a = chat(srv.addr, &[], &body).await;
    assert_eq!(a.status, 200);
    assert!(a.complete);
    assert_eq!(
        a.body,
        concat!(
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"gpt-x","provider":"primary","choices":[{"index":0,"delta":{"role":"assistant","content":"tok0 "},"finish_reason":null}]}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"gpt-x","provider":"primary","choices":[{"index":0,"delta":{"content":"tok1 "},"finish_reason":"stop"}]}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"gpt-x","provider":"primary","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
            "\n\n",
            "data: [DONE]\n\n",
        )
    );
    // Same body again: same bytes but for the call number in `id`.
    let b = chat(srv.addr, &[], &body).await;
    assert_eq!(b.body.replace("chatcmpl-2", "chatcmpl-1"), a.body);
    // Both streamed requests were counted as calls.
    let calls = raw_calls(srv.addr).await;
    assert_eq!(calls["by_path"]["/v1/chat/completions"], 2, "{calls}");
}

async fn raw_calls(addr: SocketAddr) -> Value {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /__calls HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let w = read_all(s).await;
    serde_json::from_str(&w.body).unwrap()
}

#[tokio::test]
async fn usage_chunk_only_when_asked() {
    let srv = start("p").await;
    let messages = json!([{"role":"system","content":"be brief"},
                          {"role":"user","content":"what is two plus two"}]);
    // The non-streamed answer's prompt count, for comparison.
    let plain = chat(
        srv.addr,
        &[],
        &json!({"messages": messages, "max_tokens": 3}),
    )
    .await;
    let plain: Value = serde_json::from_str(&plain.body).unwrap();
    let prompt = plain["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(prompt, 7);

    for options in [
        None,
        Some(json!({})),
        Some(json!({"include_usage": false})),
        Some(json!({"include_usage": true})),
    ] {
        let mut body = json!({"stream": true, "max_tokens": 3, "messages": messages});
        if let Some(o) = &options {
            body["stream_options"] = o.clone();
        }
        let w = chat(srv.addr, &[], &body).await;
        let events = w.events();
        assert_eq!(events.last().unwrap(), "[DONE]", "{options:?}");
        let chunks = json_events(&w);
        let usage: Vec<&Value> = chunks.iter().filter(|c| c.get("usage").is_some()).collect();
        let asked = options.is_some_and(|o| o["include_usage"] == json!(true));
        if asked {
            assert_eq!(chunks.len(), 4, "{events:?}");
            // The usage chunk is the last before [DONE].
            let u = chunks.last().unwrap();
            assert_eq!(usage, vec![u]);
            assert_eq!(u["choices"], json!([]));
            assert_eq!(
                u["usage"],
                json!({"prompt_tokens": prompt, "completion_tokens": 3, "total_tokens": prompt + 3})
            );
        } else {
            assert_eq!(chunks.len(), 3, "{events:?}");
            assert!(usage.is_empty(), "{events:?}");
        }
    }
}

#[tokio::test]
async fn cut_after_ends_without_usage_or_done() {
    let srv = start("p").await;
    let body = json!({"stream": true, "max_tokens": 5,
                      "stream_options": {"include_usage": true}});
    // With and without a pause between chunks (without one, the chunks
    // and the cut are produced back to back).
    for (cut, sent, delay) in [
        ("2", 2, "5"),
        ("2", 2, "0"),
        ("5", 5, "0"),
        ("9", 5, "5"),
        ("0", 0, "0"),
    ] {
        let w = chat(
            srv.addr,
            &[("x-demo-cut-after", cut), ("x-demo-chunk-delay-ms", delay)],
            &body,
        )
        .await;
        assert_eq!(w.status, 200, "cut {cut}");
        assert!(!w.complete, "cut {cut}: chunked body must not end cleanly");
        let events = w.events();
        assert_eq!(events.len(), sent, "cut {cut}: {events:?}");
        assert!(!w.body.contains("[DONE]"), "cut {cut}: {}", w.body);
        assert!(!w.body.contains("usage"), "cut {cut}: {}", w.body);
        for (i, c) in json_events(&w).iter().enumerate() {
            assert_eq!(c["choices"][0]["delta"]["content"], format!("tok{i} "));
        }
    }
}

#[tokio::test]
async fn bad_stream_headers_are_400() {
    let srv = start("p").await;
    let body = json!({"stream": true, "max_tokens": 2});
    for (name, value) in [
        ("x-demo-chunk-delay-ms", "abc"),
        ("x-demo-chunk-delay-ms", "-1"),
        ("x-demo-chunk-delay-ms", "10001"),
        ("x-demo-cut-after", "two"),
    ] {
        let w = chat(srv.addr, &[(name, value)], &body).await;
        assert_eq!(w.status, 400, "{name}: {value}");
        let err: Value = serde_json::from_str(&w.body).unwrap();
        assert_eq!(err["error"], "bad_request");
        assert!(
            err["detail"].as_str().unwrap().contains(name),
            "{name}: {err}"
        );
    }
    // The largest delay is accepted.
    let mut ok = send_chat(
        srv.addr,
        &[("x-demo-chunk-delay-ms", "10000")],
        &json!({"stream": true, "max_tokens": 1}).to_string(),
    )
    .await;
    let mut buf = [0u8; 1024];
    let n = ok.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
    // Not streaming: the headers are not read, the answer is unchanged.
    let w = chat(
        srv.addr,
        &[("x-demo-chunk-delay-ms", "abc")],
        &json!({"max_tokens": 2}),
    )
    .await;
    assert_eq!(w.status, 200);
}

/// In process: the number of content chunks and `completion_tokens`.
#[tokio::test]
async fn stream_token_counts() {
    let app = new_app("p");
    let count = |body: Value| {
        let app = app.clone();
        async move {
            let a = post(&app, "/v1/chat/completions", &body.to_string()).await;
            assert_eq!(a.status, StatusCode::OK);
            let text = String::from_utf8(a.body.to_vec()).unwrap();
            let events: Vec<&str> = text.split_terminator("\n\n").collect();
            assert_eq!(*events.last().unwrap(), "data: [DONE]");
            let usage: Value =
                serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap())
                    .unwrap();
            // Content chunks, completion tokens.
            (
                events.len() - 2,
                usage["usage"]["completion_tokens"].clone(),
            )
        }
    };
    let usage = json!({"include_usage": true});
    assert_eq!(
        count(json!({"stream": true, "stream_options": usage})).await,
        (16, json!(16))
    );
    assert_eq!(
        count(json!({"stream": true, "stream_options": usage, "max_completion_tokens": 3})).await,
        (3, json!(3))
    );
    assert_eq!(
        count(
            json!({"stream": true, "stream_options": usage, "max_tokens": 2,
                     "max_completion_tokens": 3})
        )
        .await,
        (2, json!(2))
    );
    assert_eq!(
        count(json!({"stream": true, "stream_options": usage, "max_tokens": 100000})).await,
        (4096, json!(4096))
    );
    // Zero tokens: one empty chunk carrying the role and "stop".
    let a = post(
        &app,
        "/v1/chat/completions",
        &json!({"stream": true, "max_tokens": 0}).to_string(),
    )
    .await;
    let text = String::from_utf8(a.body.to_vec()).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(events.len(), 2, "{text}");
    let c: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(
        c["choices"][0],
        json!({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"})
    );
}

/// The non-streamed answer keeps its exact bytes (as before streaming).
#[tokio::test]
async fn non_streamed_answer_is_unchanged() {
    let app = new_app("primary");
    for (body, expected) in [
        (
            json!({"model":"gpt-x","max_tokens":5,"messages":[{"role":"user","content":"a b c"}]}),
            r#"{"choices":[{"finish_reason":"stop","index":0,"message":{"content":"ok","role":"assistant"}}],"id":"chatcmpl-1","model":"gpt-x","object":"chat.completion","provider":"primary","usage":{"completion_tokens":5,"prompt_tokens":3,"total_tokens":8}}"#,
        ),
        (
            json!({"stream": false, "max_completion_tokens": 9}),
            r#"{"choices":[{"finish_reason":"stop","index":0,"message":{"content":"ok","role":"assistant"}}],"id":"chatcmpl-2","model":"demo-small","object":"chat.completion","provider":"primary","usage":{"completion_tokens":16,"prompt_tokens":1,"total_tokens":17}}"#,
        ),
    ] {
        let a = post(&app, "/v1/chat/completions", &body.to_string()).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert_eq!(String::from_utf8_lossy(&a.body), expected);
    }
}

/// In process, a cut-off stream's body ends with an error after K chunks.
#[tokio::test]
async fn cut_in_process_is_a_body_error() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let app = new_app("p");
    let req = request(
        "POST",
        "/v1/chat/completions",
        &[("x-demo-cut-after", "2")],
        &json!({"stream": true, "max_tokens": 4}).to_string(),
    );
    let resp = app.oneshot(req).await.unwrap();
    let mut body = resp.into_body();
    let mut chunks = 0;
    let err = loop {
        match body.frame().await {
            Some(Ok(_)) => chunks += 1,
            Some(Err(e)) => break e,
            None => panic!("the body ended cleanly after {chunks} chunks"),
        }
    };
    assert_eq!(chunks, 2);
    assert!(err.to_string().contains("x-demo-cut-after"), "{err}");
}
