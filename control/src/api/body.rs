//! JSON bodies and query strings parsed so that an error names its field
//! (`events[3].cost_micros`), and small validation helpers.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Turns a body rejection (e.g. over the size bound) into an `ApiError`.
pub fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => ApiError::invalid("", "could not read the request body"),
    })
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

/// A string of at most `max` bytes.
pub fn short(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.len() > max {
        return Err(ApiError::invalid(field, format!("longer than {max} bytes")));
    }
    Ok(())
}
