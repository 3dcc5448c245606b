//! Tests of [`encode`] and [`batchable`]: the upstream sees the demo
//! API's envelope shape, filtered headers, and spliced GraphQL bodies.

use serde_json::{json, Value};

use super::*;

fn member(seq: u64, method: &str, path: &str, body: Option<&[u8]>) -> Member {
    Member {
        id: member_id(seq),
        method: method.to_owned(),
        path: path.to_owned(),
        headers: vec![("accept".to_owned(), "application/json".to_owned())],
        body: body.map(<[u8]>::to_vec),
    }
}

#[test]
fn member_ids_are_distinct_per_sequence() {
    assert_eq!(member_id(7), "m7");
    assert_ne!(member_id(1), member_id(11));
}

#[test]
fn rest_envelope_has_the_demo_api_shape() {
    let members = [
        member(1, "GET", "/api/quotes/7?x=1", None),
        member(2, "POST", "/api/orders", Some(b"{\"qty\":2}")),
        member(3, "PUT", "/api/orders/1", Some(b"")),
    ];
    let sent: Value = serde_json::from_slice(&encode(Format::Rest, &members)).unwrap();
    assert_eq!(
        sent,
        json!({"requests": [
            {"id": "m1", "method": "GET", "path": "/api/quotes/7?x=1",
             "headers": {"accept": "application/json"}, "body": null},
            {"id": "m2", "method": "POST", "path": "/api/orders",
             "headers": {"accept": "application/json"}, "body": "{\"qty\":2}"},
            {"id": "m3", "method": "PUT", "path": "/api/orders/1",
             "headers": {"accept": "application/json"}, "body": ""},
        ]})
    );
    assert_eq!(
        encode(Format::Rest, &[]),
        br#"{"requests":[]}"#.to_vec(),
        "an empty batch is still a valid envelope"
    );
}

#[test]
fn graphql_array_is_the_members_bodies_by_position() {
    let op = |id: u32| {
        format!(
            "{{\"query\":\"query($id:ID){{quote(id:$id){{id}}}}\",\"variables\":{{\"id\":{id}}}}}"
        )
    };
    let (a, b) = (op(1), op(2));
    let members = [
        member(1, "POST", "/graphql", Some(a.as_bytes())),
        member(2, "POST", "/graphql", Some(format!(" {b}\n").as_bytes())),
    ];
    // Spliced byte for byte: the upstream sees the operations as written.
    assert_eq!(
        encode(Format::Graphql, &members),
        format!("[{a}, {b}\n]").into_bytes()
    );
    let sent: Value = serde_json::from_slice(&encode(Format::Graphql, &members)).unwrap();
    assert_eq!(sent[1]["variables"]["id"], json!(2));
    assert_eq!(encode(Format::Graphql, &[]), b"[]".to_vec());
    // A member that should not have been batched keeps the others' places.
    let stray = [
        member(1, "POST", "/graphql", Some(b"[1]")),
        members[0].clone(),
    ];
    assert_eq!(
        encode(Format::Graphql, &stray),
        format!("[null,{a}]").into_bytes()
    );
}

#[test]
fn headers_are_filtered_and_joined() {
    let mut m = member(1, "GET", "/api/quotes/7", None);
    m.headers = [
        (":method", "GET"),
        (":path", "/api/quotes/7"),
        (":authority", "api.example"),
        ("Host", "api.example"),
        ("content-length", "0"),
        ("Connection", "keep-alive, X-Trace-Hop"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("proxy-authorization", "Basic x"),
        ("Proxy-Connection", "close"),
        ("x-trace-hop", "1"),
        ("Authorization", "Bearer t"),
        ("x-tenant", "acme"),
        ("Accept", "text/plain"),
        ("accept", "application/json"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
    .collect();
    let sent: Value = serde_json::from_slice(&encode(Format::Rest, &[m])).unwrap();
    assert_eq!(
        sent["requests"][0]["headers"],
        json!({"authorization": "Bearer t", "x-tenant": "acme",
               "accept": "text/plain, application/json"})
    );
}

#[test]
fn batchable_by_format() {
    let cases: &[(Format, Option<&[u8]>, bool)] = &[
        (Format::Rest, None, true),
        (Format::Rest, Some(b""), true),
        (Format::Rest, Some("caf\u{e9}".as_bytes()), true),
        (Format::Rest, Some(b"\xff\x00binary"), false),
        (
            Format::Graphql,
            Some(br#"{"query":"{a}","variables":{}}"#),
            true,
        ),
        (Format::Graphql, Some(b" {\"query\":\"{a}\"} \n"), true),
        (Format::Graphql, None, false),
        (Format::Graphql, Some(b""), false),
        (Format::Graphql, Some(b"[{\"query\":\"{a}\"}]"), false),
        (Format::Graphql, Some(b"\"query\""), false),
        (Format::Graphql, Some(b"{\"query\":"), false),
        (Format::Graphql, Some(b"{} {}"), false),
        (Format::Graphql, Some(b"{\"q\":\"\xff\"}"), false),
    ];
    for &(format, body, want) in cases {
        let m = member(1, "POST", "/anything", body);
        assert_eq!(batchable_as(format, &m), want, "{format:?} {body:?}");
        // By the member alone: the path says which format applies.
        let path = match format {
            Format::Rest => "/api/orders?x=1",
            Format::Graphql => "/v1/graphql?op=q",
        };
        let m = member(1, "POST", path, body);
        assert_eq!(batchable(&m), want, "{path} {body:?}");
    }
    // A REST path carries any UTF-8 body, JSON or not.
    assert!(batchable(&member(
        1,
        "POST",
        "/api/graphql-docs",
        Some(b"text")
    )));
    assert!(!batchable(&member(1, "POST", "/graphql", Some(b"text"))));
}

#[test]
fn non_utf8_rest_body_encodes_lossily_without_panicking() {
    let m = member(1, "POST", "/api/x", Some(b"a\xffb"));
    let sent: Value = serde_json::from_slice(&encode(Format::Rest, &[m])).unwrap();
    assert_eq!(sent["requests"][0]["body"], json!("a\u{fffd}b"));
}

proptest::proptest! {
    #[test]
    fn rest_encode_of_batchable_members_keeps_the_body(text in ".{0,40}", path in "/[ -~]{0,20}") {
        let m = member(1, "POST", &path, Some(text.as_bytes()));
        proptest::prop_assert!(batchable_as(Format::Rest, &m));
        let sent: Value = serde_json::from_slice(&encode(Format::Rest, &[m])).unwrap();
        proptest::prop_assert_eq!(&sent["requests"][0]["body"], &json!(text));
        proptest::prop_assert_eq!(&sent["requests"][0]["path"], &json!(path));
    }
}
