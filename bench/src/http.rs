//! The bench's HTTP client for probes, counters and the G/H/W drivers: the
//! end-to-end harness's (`e2e::http`, ureq underneath, one connection pool
//! per thread, every status a value), with transport errors as `Err`
//! naming the request rather than a panic, as the bench reports them.
//! (K's load client is its own: keep-alive connections it controls one by
//! one, see `workload.rs`.)

pub use e2e::http::Resp;

pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Resp, String> {
    e2e::http::try_request(method, url, headers, body).map_err(|e| format!("{method} {url}: {e}"))
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
    request("GET", url, headers, None)
}

/// The body as JSON, or why not (`e2e::http::Resp::json` panics, for tests).
pub fn json(r: &Resp) -> Result<serde_json::Value, String> {
    serde_json::from_slice(&r.body).map_err(|e| format!("body is not JSON: {e}"))
}
