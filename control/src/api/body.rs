//! JSON bodies and query strings parsed so that an error names its field
//! (`events[3].cost_micros`), and small validation helpers.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Every write handler's body: read within the size bound (413 beyond it)
/// and parsed with `json`, so a serde error is the documented 400
/// `{"error", "field"}` naming the field. Must be a handler's last argument.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| match r.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::invalid("", "could not read the request body"),
            })?;
        json(&bytes).map(JsonBody)
    }
}

fn field_of(path: &str, msg: &str) -> String {
    let path = if path == "." { "" } else { path };
    // serde reports a missing field at its parent; name the field itself.
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
    }
    path.to_owned()
}

/// Parses a JSON body; errors name the offending field.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        ApiError::invalid(field_of(&path, &msg), msg)
    })
}

/// Parses a query string; errors name the offending parameter.
pub fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    let de =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.unwrap_or("").as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        ApiError::invalid(field_of(&path, &msg), msg)
    })
}

/// A non-empty string of at most `max` bytes.
pub fn ident(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    short(field, v, max)
}

/// A string of at most `max` bytes, without NUL (PostgreSQL text cannot
/// hold it: refused alike on every store, not a 503 on one).
pub fn short(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.len() > max {
        return Err(ApiError::invalid(field, format!("longer than {max} bytes")));
    }
    if v.contains('\0') {
        return Err(ApiError::invalid(field, "must not contain NUL"));
    }
    Ok(())
}
