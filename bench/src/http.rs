//! A small blocking HTTP client (ureq) for probes, counters and the G/H
//! drivers; every status is a value, not an error.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON: {e}"))
    }
}

thread_local! {
    /// One pool per thread: ureq's pool shared by many threads firing at
    /// once was seen (in the e2e suite) to lose a request, which the G
    /// burst would report as "no answer".
    static AGENT: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .max_idle_connections_per_host(64)
        .build()
        .into();
}

pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Resp, String> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder
        .body(body.map(<[u8]>::to_vec).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let mut resp = AGENT
        .with(|agent| agent.run(req))
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| format!("{method} {url}: body: {e}"))?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
    request("GET", url, headers, None)
}
