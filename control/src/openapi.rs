//! The OpenAPI document (placeholder).
pub fn document_string() -> String {
    String::new()
}
