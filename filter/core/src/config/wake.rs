//! Where a waiting request on Kong is woken from (`wake`), and the checks
//! a Kong config needs that an Envoy one does not.
//!
//! Kong's engine lets a paused request be answered or resumed only from
//! its own context, and gives that context no timer (DESIGN.md "Host
//! facts"). So there a request that waits (coalescing follower, rate-limit
//! queue, batch member, first budget lease) calls `cost-control`'s
//! `GET /v1/wake?after_ms=N`, and its answer is the request's own tick.

use serde::Deserialize;

use super::compile::{Config, Source};
use super::ConfigError;
use crate::host::HostKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWake {
    pub target: String,
    #[serde(default = "default_authority")]
    pub authority: String,
}

fn default_authority() -> String {
    "cost-control".into()
}

/// The service a waiting request calls to be woken (Kong only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    /// `host:port` of a `cost-control`.
    pub target: String,
    pub authority: String,
}

pub fn compile_wake(raw: RawWake) -> Result<Wake, ConfigError> {
    host_port("wake.target", &raw.target)?;
    if raw.authority.is_empty() || raw.authority.contains(char::is_whitespace) {
        return Err(ConfigError::at("wake.authority", "must be a host name"));
    }
    Ok(Wake {
        target: raw.target,
        authority: raw.authority,
    })
}

/// A callout target on Kong: `host:port`, the port 1..=65535. (Envoy names
/// a cluster instead, which Envoy itself checks.)
fn host_port(field: &str, target: &str) -> Result<(), ConfigError> {
    let ok = target.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(char::is_whitespace)
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::at(
            field,
            format!("{target:?}: on Kong a callout target is host:port"),
        ))
    }
}

impl Config {
    /// Whether some rule can park a request: it then waits for a wake.
    pub fn parks_requests(&self) -> bool {
        self.routes.iter().any(|r| {
            r.coalesce.is_some()
                || r.batch.is_some()
                || r.limit.as_ref().is_some_and(|l| l.queue_bound > 0)
                || r.cost.as_ref().is_some_and(|c| c.budget.is_some())
        })
    }
}

/// Kong's rules: no JWT claim sources, callout targets are `host:port`,
/// and a config whose
/// rules park requests needs a wake target (`wake`, else the
/// `cost-control` of `accounting`). Returns the wake target to use.
pub(super) fn check_host(config: &Config, wake: Option<Wake>) -> Result<Option<Wake>, ConfigError> {
    if config.host != HostKind::Kong {
        return Ok(wake);
    }
    // Claims come from Envoy's jwt_authn metadata, which Kong's engine
    // does not have: such a source would never yield a tenant.
    for (field, sources) in [
        ("identity.tenant", &config.identity.tenant),
        ("identity.service", &config.identity.service),
    ] {
        if let Some(i) = sources
            .iter()
            .position(|s| matches!(s, Source::JwtClaim(_)))
        {
            return Err(ConfigError::at(
                format!("{field}[{i}].jwt_claim"),
                "verified JWT claims are read from Envoy's jwt_authn metadata, which Kong does not have; use a header your gateway sets",
            ));
        }
    }
    if let Some(a) = &config.accounting {
        host_port("accounting.cost_control", &a.cost_control)?;
    }
    for (i, r) in config.routes.iter().enumerate() {
        if let Some(b) = &r.batch {
            host_port(&format!("routes[{i}].batch.upstream"), &b.upstream)?;
        }
        if let Some(f) = r.cache.as_ref().and_then(|c| c.refresh.as_ref()) {
            host_port(&format!("routes[{i}].cache.refresh.target"), &f.target)?;
        }
    }
    let wake = wake.or_else(|| {
        config.accounting.as_ref().map(|a| Wake {
            target: a.cost_control.clone(),
            authority: a.authority.clone(),
        })
    });
    if wake.is_none() && config.parks_requests() {
        return Err(ConfigError::at(
            "wake.target",
            "required on Kong when a rule can make a request wait (coalesce, batch, a limit queue, a budget): the host:port of a cost-control, or configure accounting",
        ));
    }
    Ok(wake)
}
