//! The canonical text of a JSON value: object keys in byte order, no
//! whitespace, strings and numbers as serde_json writes them. Written out
//! here rather than left to serde_json's map order, which a crate feature
//! elsewhere in a build (`preserve_order`) would change silently.

use serde_json::Value;

/// Append the canonical text of `v` to `out`.
pub fn write(out: &mut String, v: &Value) {
    match v {
        Value::Object(o) => write_object(out, o.iter()),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::String(s) => push_string(out, s),
        // Numbers, booleans and null print the same however they came.
        other => out.push_str(&other.to_string()),
    }
}

/// Append an object of these fields, sorted by key.
pub fn write_object<'a>(out: &mut String, fields: impl Iterator<Item = (&'a String, &'a Value)>) {
    let mut sorted: Vec<(&String, &Value)> = fields.collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, k);
        out.push(':');
        write(out, v);
    }
    out.push('}');
}

fn push_string(out: &mut String, s: &str) {
    // A `str` always serialises; the fallback keeps this total.
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}
