//! The wire formats of a batch: the request envelope sent upstream as one
//! call ([`encode`]) and the split of its answer back into one answer per
//! member ([`decode`]).
//!
//! Nothing here bounds sizes (the caller does) and nothing panics: a member
//! the format cannot carry is refused by [`batchable`] before it joins a
//! batch, and an answer that does not parse yields `None` slots, so the
//! caller can answer those members another way.

mod decode;
#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod encode_tests;

use std::collections::BTreeMap;

use serde::Serialize;

pub use decode::decode;

/// One client request waiting in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Correlates the member with its slot of the answer ([`member_id`]).
    pub id: String,
    pub method: String,
    /// Path and query, as the client sent them.
    pub path: String,
    /// Request headers as received; [`encode`] drops those that must not
    /// reach the upstream: pseudo, hop-by-hop, `proxy-*`, `content-length`
    /// and `host`.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// One member's part of the batch answer, ready to send to its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAnswer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// The batch protocol the upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"requests":[..]}` envelope answered by `{"responses":[..]}`,
    /// matched by member id.
    Rest,
    /// A JSON array of GraphQL operations answered by an array, matched by
    /// position.
    Graphql,
}

/// The id of the `seq`-th member a worker batches. Ids only need to be
/// unique within one batch; a per-worker counter gives that cheaply.
pub fn member_id(seq: u64) -> String {
    format!("m{seq}")
}

/// Whether `member` can join a batch, by the member alone: its body must
/// be UTF-8 (REST carries it as a JSON string), and a member addressed to
/// a GraphQL endpoint (a path ending in `/graphql`) must carry exactly one
/// JSON object (it is spliced in as an element of the GraphQL array).
///
/// The GraphQL test goes by the path because a member does not know its
/// route's format; when the caller knows it, [`batchable_as`] is exact
/// (it also covers GraphQL endpoints under other paths). A member refused
/// here is sent on its own.
pub fn batchable(member: &Member) -> bool {
    let path = member.path.split('?').next().unwrap_or("");
    let format = if path.ends_with("/graphql") {
        Format::Graphql
    } else {
        Format::Rest
    };
    batchable_as(format, member)
}

/// Whether `format` can carry `member` unchanged: REST needs a UTF-8 body
/// (or none), GraphQL a body that is one JSON object.
pub fn batchable_as(format: Format, member: &Member) -> bool {
    match format {
        Format::Rest => match member.body.as_deref() {
            Some(body) => std::str::from_utf8(body).is_ok(),
            None => true,
        },
        Format::Graphql => graphql_operation(member).is_some(),
    }
}

/// The member's body if it is exactly one JSON object (whitespace around
/// it allowed), else `None`.
fn graphql_operation(member: &Member) -> Option<&[u8]> {
    let body = member.body.as_deref()?;
    // Parsing into a map both validates the JSON and refuses non-objects;
    // the bytes themselves are spliced, so the operation reaches the
    // upstream exactly as the client wrote it (key order, number text).
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).ok()?;
    Some(body)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe the client's
/// connection, not the request, and the batch travels on another one.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a header of a member (request or answer part) belongs in its
/// part of the batch. Dropped: pseudo headers (`:method`, `:path` are
/// already fields of the member), hop-by-hop headers, `proxy-*`, the
/// names the `connection` header lists, `content-length` (the envelope is
/// framed as a whole, the member's length changes when embedded) and
/// `host` (the batch goes to one upstream host). `connection_listed` holds
/// the lowercase tokens of the member's `connection` header.
fn forwarded(name: &str, connection_listed: &[String]) -> bool {
    let name = name.to_ascii_lowercase();
    !(name.starts_with(':')
        || name.starts_with("proxy-")
        || name == "content-length"
        || name == "host"
        || HOP_BY_HOP.contains(&name.as_str())
        || connection_listed.contains(&name))
}

/// The lowercase header names a `connection` header value lists: they are
/// hop-by-hop too, whatever their name.
fn connection_tokens<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<String> {
    headers
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| {
            String::from_utf8_lossy(value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The headers of a member that reach the upstream, as one JSON object:
/// names lowercased (HTTP names are case-insensitive, and an object needs
/// one key per header), repeated names joined with ", " (RFC 9110 §5.3).
fn forwarded_headers(headers: &[(String, String)]) -> BTreeMap<String, String> {
    let listed = connection_tokens(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        if !forwarded(name, &listed) {
            continue;
        }
        out.entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    out
}

#[derive(Serialize)]
struct RestRequest<'a> {
    id: &'a str,
    method: &'a str,
    path: &'a str,
    headers: BTreeMap<String, String>,
    body: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Serialize)]
struct RestEnvelope<'a> {
    requests: Vec<RestRequest<'a>>,
}

/// The body of the one upstream call carrying `members`, in order.
///
/// Members should have passed [`batchable`]; one that did not is still
/// encoded without panicking: a non-UTF-8 REST body is replaced lossily,
/// and a GraphQL body that is not an object becomes `null`, which keeps
/// the positions of the others (the upstream answers that slot with an
/// error).
pub fn encode(format: Format, members: &[Member]) -> Vec<u8> {
    match format {
        Format::Rest => encode_rest(members),
        Format::Graphql => encode_graphql(members),
    }
}

fn encode_rest(members: &[Member]) -> Vec<u8> {
    let envelope = RestEnvelope {
        requests: members
            .iter()
            .map(|m| RestRequest {
                id: &m.id,
                method: &m.method,
                path: &m.path,
                headers: forwarded_headers(&m.headers),
                body: m.body.as_deref().map(String::from_utf8_lossy),
            })
            .collect(),
    };
    // Serializing strings and string maps cannot fail; an empty envelope
    // is the harmless answer if it ever did.
    serde_json::to_vec(&envelope).unwrap_or_else(|_| b"{\"requests\":[]}".to_vec())
}

fn encode_graphql(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        2 + members
            .iter()
            .map(|m| m.body.as_ref().map_or(4, Vec::len) + 1)
            .sum::<usize>(),
    );
    out.push(b'[');
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(graphql_operation(member).unwrap_or(b"null"));
    }
    out.push(b']');
    out
}
