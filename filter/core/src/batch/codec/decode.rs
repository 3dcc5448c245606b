//! Splitting a batch answer into one answer per member.
//!
//! Every doubt yields `None` for the member concerned rather than a guess:
//! the caller answers a `None` member another way (alone, or with an
//! error), which is always safer than handing a client someone else's part
//! or a mangled one.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{connection_tokens, forwarded, Format, MemberAnswer};

/// One slot per id of `ids`, in order: the member's answer, or `None` when
/// the answer lacks it, its part is malformed, or the whole body does not
/// parse (then every slot is `None`).
///
/// - REST: `{"responses":[{"id":..,"status":..,"headers":{..},"body":..}]}`
///   matched by `id` in any order; a repeated id keeps its first part.
///   A part is malformed if its status is outside 100..=599 or not an
///   integer, or `headers` is not an object of strings. `body` is taken
///   as the text of a string, else the JSON text of the value; missing or
///   `null` means empty (the request envelope writes `null` for "no
///   body", so the answer is read the same way).
/// - GraphQL: a JSON array matched by position, each element the JSON text
///   of a 200 `application/json` answer; elements past the end of a short
///   array are `None`, a body that is not an array makes all `None`.
///
/// Answer headers go through the same filter as request headers: framing
/// and hop-by-hop fields of the part would be wrong on the client's own
/// response (its length is not the envelope's).
pub fn decode(format: Format, body: &[u8], ids: &[String]) -> Vec<Option<MemberAnswer>> {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return vec![None; ids.len()];
    };
    match format {
        Format::Rest => decode_rest(&doc, ids),
        Format::Graphql => decode_graphql(doc, ids.len()),
    }
}

fn decode_rest(doc: &Value, ids: &[String]) -> Vec<Option<MemberAnswer>> {
    let Some(parts) = doc.get("responses").and_then(Value::as_array) else {
        return vec![None; ids.len()];
    };
    // First part per id, malformed or not: a later duplicate must not
    // replace it, since the upstream disagreeing with itself is no reason
    // to trust either copy more.
    let mut by_id: BTreeMap<&str, Option<MemberAnswer>> = BTreeMap::new();
    for part in parts {
        let Some(id) = part.get("id").and_then(Value::as_str) else {
            continue;
        };
        by_id.entry(id).or_insert_with(|| rest_part(part));
    }
    ids.iter()
        .map(|id| by_id.get(id.as_str()).cloned().flatten())
        .collect()
}

fn rest_part(part: &Value) -> Option<MemberAnswer> {
    let status = part.get("status")?.as_u64()?;
    if !(100..=599).contains(&status) {
        return None;
    }
    let headers = match part.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => rest_headers(map)?,
        Some(_) => return None,
    };
    let body = match part.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(other) => serde_json::to_vec(other).ok()?,
    };
    Some(MemberAnswer {
        status: u16::try_from(status).ok()?,
        headers,
        body,
    })
}

/// The part's headers, `None` if any value is not a string.
fn rest_headers(map: &Map<String, Value>) -> Option<Vec<(String, Vec<u8>)>> {
    let pairs = map
        .iter()
        .map(|(name, value)| Some((name.as_str(), value.as_str()?.as_bytes())))
        .collect::<Option<Vec<(&str, &[u8])>>>()?;
    let listed = connection_tokens(pairs.iter().copied());
    Some(
        pairs
            .into_iter()
            .filter(|(name, _)| forwarded(name, &listed))
            .map(|(name, value)| (name.to_owned(), value.to_vec()))
            .collect(),
    )
}

fn decode_graphql(doc: Value, members: usize) -> Vec<Option<MemberAnswer>> {
    let Value::Array(elements) = doc else {
        return vec![None; members];
    };
    let mut out: Vec<Option<MemberAnswer>> = elements
        .into_iter()
        .take(members)
        .map(|element| {
            Some(MemberAnswer {
                status: 200,
                headers: vec![("content-type".to_owned(), b"application/json".to_vec())],
                body: serde_json::to_vec(&element).ok()?,
            })
        })
        .collect();
    out.resize(members, None);
    out
}
