//! API errors, mapped to `{"error": "...", "field": "..."}` with a status.
//! Store failures are logged and answered as 503 without their details.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;

#[derive(Debug, PartialEq, Eq)]
pub enum ApiError {
    /// No or unknown bearer token (401).
    Unauthorized,
    /// A valid token of the wrong role (403).
    Forbidden,
    /// The request is invalid; `field` names the offending field (400).
    Invalid {
        field: String,
        message: String,
    },
    NotFound(&'static str),
    PayloadTooLarge,
    /// The store failed or is unreachable (503).
    Unavailable,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Backend(msg) => {
                tracing::error!(error = %msg, "store operation failed");
                ApiError::Unavailable
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "missing or invalid bearer token"}),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                serde_json::json!({"error": "token not allowed for this operation"}),
            ),
            ApiError::Invalid { field, message } => (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": message, "field": field}),
            ),
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": format!("{what} not found")}),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": "request body too large"}),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "store unavailable"}),
            ),
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
