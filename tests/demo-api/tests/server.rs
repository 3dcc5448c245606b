//! Tests against a real socket: concurrency, connection aborts, framing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use demo_api::{app, server, AppState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct Running {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start(provider: &str) -> Running {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let router = app(AppState::new(provider));
    tokio::spawn(server::serve(listener, router, async {
        let _ = stopped.await;
    }));
    Running { addr, _stop: stop }
}

/// Send one raw HTTP/1.1 request with `Connection: close`; return all bytes.
async fn raw(addr: SocketAddr, method: &str, target: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_slow_requests_overlap() {
    let srv = start("primary").await;
    let start_at = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let addr = srv.addr;
            tokio::spawn(async move {
                raw(addr, "GET", &format!("/api/items/{i}?delay_ms=300"), "").await
            })
        })
        .collect();
    for t in tasks {
        let resp = t.await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    }
    let took = start_at.elapsed();
    assert!(took >= Duration::from_millis(300));
    assert!(took < Duration::from_secs(5), "200 x 300 ms took {took:?}");
    let calls = raw(srv.addr, "GET", "/__calls", "").await;
    assert!(calls.contains("\"total\":200"), "{calls}");
}

#[tokio::test]
async fn abort_closes_the_connection_without_an_answer() {
    let srv = start("p").await;
    let rule = r#"{"path_prefix":"/api/gone","abort":true}"#;
    assert!(raw(srv.addr, "POST", "/__faults", rule)
        .await
        .contains("200 OK"));
    let resp = raw(srv.addr, "GET", "/api/gone/1", "").await;
    assert_eq!(resp, "", "expected an empty reply");
    let resp = raw(srv.addr, "POST", "/api/gone/1", "x").await;
    assert_eq!(resp, "");
    // Other paths are fine, and aborted requests were counted.
    let resp = raw(srv.addr, "GET", "/__calls", "").await;
    assert!(resp.contains("\"/api/gone/1\":2"), "{resp}");
}

#[tokio::test]
async fn chunked_and_head_on_the_wire() {
    let srv = start("p").await;
    let resp = raw(srv.addr, "GET", "/api/items/1?chunked=1", "").await;
    let lower = resp.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{resp}");
    assert!(!lower.contains("content-length"), "{resp}");
    assert!(resp.ends_with("0\r\n\r\n"), "{resp}");

    let get = raw(srv.addr, "GET", "/api/items/1", "").await;
    let body_len = get.split("\r\n\r\n").nth(1).unwrap().len();
    let head = raw(srv.addr, "HEAD", "/api/items/1", "").await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.ends_with("\r\n\r\n"),
        "HEAD must have no body: {head:?}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {body_len}\r\n")),
        "{head}"
    );
}

#[tokio::test]
async fn keep_alive_connection_serves_several_requests() {
    let srv = start("p").await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let one = "GET /api/a/1 HTTP/1.1\r\nHost: demo\r\n\r\n";
    let two = "GET /api/a/2 HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n";
    s.write_all(format!("{one}{two}").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(
        out.contains("\"call\":1") && out.contains("\"call\":2"),
        "{out}"
    );
}
