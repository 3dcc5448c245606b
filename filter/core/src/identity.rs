//! Identify: the first stage of every matched request. Who is asking
//! (tenant, service), how urgent it is (priority), and the id that follows
//! the request through logs, upstream and the response.
//!
//! Identity is only taken from sources a verifier controls (DESIGN.md step
//! 1): a header the gateway sets, or a claim that Envoy's `jwt_authn`
//! verified. A raw `Authorization` JWT is never decoded here.

use crate::config::{self, Priority, Route, Source};
use crate::headers::Headers;
use crate::host::Host;
use crate::request_id::{self, RequestIds};

/// Tenant used when no trusted source names one and the rule allows it.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub request_id: String,
    /// Whether the filter made the id (then it must be set upstream).
    pub request_id_generated: bool,
    /// `None` when no trusted source named a tenant.
    pub tenant: Option<String>,
    pub service: Option<String>,
    pub priority: Priority,
    pub started_ms: u64,
}

impl Identity {
    pub fn tenant_or_anonymous(&self) -> &str {
        self.tenant.as_deref().unwrap_or(ANONYMOUS)
    }
}

/// An identity value is used in cache keys, table keys and metric-free
/// logs: keep it to a bounded set of safe bytes, or treat it as absent.
fn acceptable_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
}

fn resolve(
    sources: &[Source],
    cfg: &config::Identity,
    headers: &Headers<'_>,
    host: &impl Host,
) -> Option<String> {
    sources.iter().find_map(|s| {
        let value = match s {
            Source::Header(name) => headers.get_str(name).map(str::to_string),
            Source::JwtClaim(claim) => host.property_str(&[
                "metadata",
                "filter_metadata",
                &cfg.jwt_namespace,
                &cfg.jwt_payload_key,
                claim,
            ]),
        }?;
        let value = value.trim().to_string();
        acceptable_name(&value).then_some(value)
    })
}

pub fn identify(
    cfg: &config::Identity,
    route: &Route,
    headers: &Headers<'_>,
    host: &impl Host,
    ids: &mut RequestIds,
) -> Identity {
    let (request_id, request_id_generated) = match headers.get(&cfg.request_id_header) {
        Some(v) if request_id::acceptable(v) => (String::from_utf8_lossy(v).into_owned(), false),
        _ => (ids.next_id(), true),
    };
    let priority = if cfg.priority_trusted {
        headers
            .get_str(&cfg.priority_header)
            .and_then(Priority::parse)
            .unwrap_or(route.priority)
    } else {
        route.priority
    };
    Identity {
        request_id,
        request_id_generated,
        tenant: resolve(&cfg.tenant, cfg, headers, host),
        service: resolve(&cfg.service, cfg, headers, host),
        priority,
        started_ms: host.now_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::header_list::HeaderList;
    use crate::mem_host::MemHost;

    const JWT: [&str; 4] = [
        "metadata",
        "filter_metadata",
        "envoy.filters.http.jwt_authn",
        "jwt_payload",
    ];

    fn run(config: &str, host: &MemHost) -> Identity {
        let cfg = parse(config.as_bytes()).unwrap();
        let all = host.request_headers.clone();
        let all = HeaderList::from(&all[..]);
        let headers = Headers::new(&all);
        identify(
            &cfg.identity,
            &cfg.routes[0],
            &headers,
            host,
            &mut RequestIds::new([9, 9, 9, 9]),
        )
    }

    const DEFAULT: &str =
        r#"{"version":1,"routes":[{"name":"r","match":{"prefix":"/"},"priority":"low"}]}"#;

    #[test]
    fn request_id_kept_or_generated() {
        let id = run(
            DEFAULT,
            &MemHost::get("/").with_header("x-request-id", "abc"),
        );
        assert_eq!(
            (id.request_id.as_str(), id.request_id_generated),
            ("abc", false)
        );
        let id = run(DEFAULT, &MemHost::get("/"));
        assert!(id.request_id_generated);
        assert_eq!(id.request_id.len(), 36);
        let id = run(
            DEFAULT,
            &MemHost::get("/").with_header("x-request-id", "has space"),
        );
        assert!(id.request_id_generated);
    }

    #[test]
    fn tenant_and_service_from_trusted_header() {
        let host = MemHost::get("/")
            .with_header("X-Tenant-Id", "acme")
            .with_header("x-service-id", "billing");
        let id = run(DEFAULT, &host);
        assert_eq!(id.tenant.as_deref(), Some("acme"));
        assert_eq!(id.service.as_deref(), Some("billing"));
        let id = run(DEFAULT, &MemHost::get("/"));
        assert_eq!(id.tenant, None);
        assert_eq!(id.tenant_or_anonymous(), ANONYMOUS);
    }

    #[test]
    fn unsafe_tenant_values_are_ignored() {
        for bad in ["a b", "", "x|y", &"a".repeat(129)] {
            let id = run(DEFAULT, &MemHost::get("/").with_header("x-tenant-id", bad));
            assert_eq!(id.tenant, None, "{bad:?}");
        }
    }

    #[test]
    fn jwt_claim_only_from_verified_metadata() {
        let cfg = r#"{"version":1,"identity":{"tenant":[{"jwt_claim":"tenant"}]},
                      "routes":[{"name":"r","match":{"prefix":"/"}}]}"#;
        // A client-sent header is not a source in this config.
        let id = run(
            cfg,
            &MemHost::get("/").with_header("x-tenant-id", "spoofed"),
        );
        assert_eq!(id.tenant, None);
        let mut path = JWT.to_vec();
        path.push("tenant");
        let id = run(cfg, &MemHost::get("/").with_property(&path, "globex"));
        assert_eq!(id.tenant.as_deref(), Some("globex"));
    }

    #[test]
    fn first_source_that_yields_wins() {
        let cfg = r#"{"version":1,"identity":{"tenant":[{"jwt_claim":"tenant"},{"header":"x-tenant-id"}]},
                      "routes":[{"name":"r","match":{"prefix":"/"}}]}"#;
        let id = run(cfg, &MemHost::get("/").with_header("x-tenant-id", "hdr"));
        assert_eq!(id.tenant.as_deref(), Some("hdr"));
    }

    #[test]
    fn priority_header_only_when_trusted() {
        let host = MemHost::get("/").with_header("x-priority", "high");
        assert_eq!(run(DEFAULT, &host).priority, Priority::Low);
        let trusted = r#"{"version":1,"identity":{"priority_header":{"name":"x-priority","trusted":true}},
                          "routes":[{"name":"r","match":{"prefix":"/"},"priority":"low"}]}"#;
        assert_eq!(run(trusted, &host).priority, Priority::High);
        let junk = MemHost::get("/").with_header("x-priority", "urgent");
        assert_eq!(run(trusted, &junk).priority, Priority::Low);
    }
}
