//! Bearer-token auth: an admin token for budget and purge writes, a gateway
//! token for ingest, allowances and snapshots; reads accept either. Tokens
//! are kept only as SHA-256 digests, compared in constant time, never logged.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub const DEV_ADMIN_TOKEN: &str = "admin-dev-token";
pub const DEV_GATEWAY_TOKEN: &str = "gateway-dev-token";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Gateway,
}

/// The two tokens' digests. `Debug` prints nothing secret.
#[derive(Clone)]
pub struct Tokens {
    admin: [u8; 32],
    gateway: [u8; 32],
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<redacted>)")
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Constant-time equality of two digests.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl Tokens {
    pub fn new(admin: &str, gateway: &str) -> Result<Self, String> {
        if admin.is_empty() || gateway.is_empty() {
            return Err("tokens must not be empty".into());
        }
        if admin == gateway {
            return Err("the admin and gateway tokens must differ".into());
        }
        Ok(Self {
            admin: digest(admin),
            gateway: digest(gateway),
        })
    }

    pub fn dev() -> Self {
        Self {
            admin: digest(DEV_ADMIN_TOKEN),
            gateway: digest(DEV_GATEWAY_TOKEN),
        }
    }

    /// The role a presented token has, if any. Both comparisons always run.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let d = digest(token);
        let (is_admin, is_gateway) = (ct_eq(&d, &self.admin), ct_eq(&d, &self.gateway));
        if is_admin {
            Some(Role::Admin)
        } else if is_gateway {
            Some(Role::Gateway)
        } else {
            None
        }
    }
}

/// The role of a request's bearer token, from the `Tokens` substate (so
/// auth depends on the tokens only, not on the state that holds them).
fn role<S>(parts: &Parts, state: &S) -> Result<Role, ApiError>
where
    Arc<Tokens>: FromRef<S>,
{
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthorized)?;
    Arc::<Tokens>::from_ref(state)
        .role_of(token.trim())
        .ok_or(ApiError::Unauthorized)
}

/// Extractor: the admin token is required.
pub struct Admin;
/// Extractor: the gateway token is required.
pub struct Gateway;
/// Extractor: either token (read-only routes).
pub struct AnyRole(pub Role);

impl<S> FromRequestParts<S> for Admin
where
    Arc<Tokens>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match role(parts, state)? {
            Role::Admin => Ok(Admin),
            Role::Gateway => Err(ApiError::Forbidden),
        }
    }
}

impl<S> FromRequestParts<S> for Gateway
where
    Arc<Tokens>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match role(parts, state)? {
            Role::Gateway => Ok(Gateway),
            Role::Admin => Err(ApiError::Forbidden),
        }
    }
}

impl<S> FromRequestParts<S> for AnyRole
where
    Arc<Tokens>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        role(parts, state).map(AnyRole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_redaction() {
        let t = Tokens::new("a-secret", "g-secret").unwrap();
        assert_eq!(t.role_of("a-secret"), Some(Role::Admin));
        assert_eq!(t.role_of("g-secret"), Some(Role::Gateway));
        assert_eq!(t.role_of("a-secreT"), None);
        assert!(!format!("{t:?}").contains("secret"));
        assert!(Tokens::new("x", "x").is_err());
        assert!(Tokens::new("", "x").is_err());
    }
}
