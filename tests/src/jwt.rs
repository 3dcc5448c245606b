//! HS256 tokens and the matching JWKS for Envoy's `jwt_authn` in tests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const ISSUER: &str = "e2e-issuer";
pub const KEY: &[u8] = b"e2e-test-signing-key-0123456789abcdef";

/// The JWKS that verifies tokens signed with [`KEY`].
pub fn jwks() -> String {
    serde_json::json!({"keys":[{"kty":"oct","alg":"HS256","kid":"e2e","k":URL_SAFE_NO_PAD.encode(KEY)}]}).to_string()
}

/// A signed token carrying `claims` (plus issuer and a far expiry).
pub fn token(claims: serde_json::Value, key: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT","kid":"e2e"}"#);
    let mut payload = claims;
    payload["iss"] = ISSUER.into();
    payload["exp"] = 4_102_444_800u64.into();
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|e| panic!("hmac key: {e}"));
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}
