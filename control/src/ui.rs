//! The dashboard: a static page and its modules, embedded in the binary
//! (no build step, no CDN) and served at `/ui/` (`/` redirects there). It
//! holds no data: the page reads the API with the token its user enters,
//! so it needs no auth of its own.
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles
//! and requests only from this origin, no inline script or style, no
//! `eval`, no framing, and forms may not submit anywhere (the token form
//! is handled by script; were it ever submitted, the token must not land in
//! a URL).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// The policy every dashboard answer carries.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

const JS: &str = "text/javascript; charset=utf-8";

/// The embedded files: name under `/ui/`, content type, bytes.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../ui/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../ui/favicon.svg"),
    ),
    ("app.js", JS, include_bytes!("../ui/app.js")),
    ("api.js", JS, include_bytes!("../ui/api.js")),
    ("format.js", JS, include_bytes!("../ui/format.js")),
    ("dom.js", JS, include_bytes!("../ui/dom.js")),
    ("chart.js", JS, include_bytes!("../ui/chart.js")),
    ("savings.js", JS, include_bytes!("../ui/savings.js")),
    ("budgets.js", JS, include_bytes!("../ui/budgets.js")),
    ("alerts.js", JS, include_bytes!("../ui/alerts.js")),
    ("purge.js", JS, include_bytes!("../ui/purge.js")),
];

/// `/` and `/ui` redirect to `/ui/`; `/ui/` is the page, `/ui/{file}` its files.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { asset("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

fn asset(name: &str) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return with_policy((StatusCode::NOT_FOUND, "not found").into_response());
    };
    let mut resp = ([(header::CONTENT_TYPE, *content_type)], bytes.to_vec()).into_response();
    // Embedded files change only with the binary: revalidate each load
    // rather than keep a stale page after an upgrade.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_policy(resp)
}

fn with_policy(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}
