//! Socket wiring: bind, accept, serve HTTP/1.1 and h2c, abort on demand.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tower::ServiceExt as _;

/// Listen backlog: the benchmarks open well over 1000 connections at once.
const BACKLOG: u32 = 4096;

/// Response extension asking [`serve`] to close the connection instead of
/// sending the response (fault `abort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortConnection;

/// A response that [`serve`] turns into a connection closed without any
/// answer (a proxy sees a reset / empty reply). In process (`oneshot`)
/// it shows up as a 500 carrying the [`AbortConnection`] extension.
pub fn abort_response() -> Response {
    let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    resp.extensions_mut().insert(AbortConnection);
    resp
}

/// The error handed to hyper to drop a connection.
#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection aborted by fault injection")
    }
}

impl std::error::Error for Aborted {}

/// Bind a listening socket with a large backlog.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serve `router` on `listener` until `shutdown` completes. Connections
/// still open then are dropped with the runtime.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return Ok(()),
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, router.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                eprintln!("demo-api: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move {
            let resp = router
                .oneshot(req.map(Body::new))
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            if resp.extensions().get::<AbortConnection>().is_some() {
                return Err(Aborted);
            }
            Ok::<_, Aborted>(resp)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's 30 s header-read timeout also runs while a kept-alive
    // connection waits for its next request, so an idle upstream
    // connection was closed at 30 s, and a gateway sending on it at that
    // instant got a reset (`make soak`: one Envoy 503 "connection
    // termination" in 361,460 answers). The demo API keeps idle
    // connections open; the gateway's pool decides when to drop them.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    // Errors here are the peer going away or an injected abort.
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await;
}
