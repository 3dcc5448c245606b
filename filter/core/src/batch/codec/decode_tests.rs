//! Tests of [`decode`]: answers matched by id or position, and every
//! malformed answer or part turned into `None`.

use serde_json::{json, Value};

use super::*;

fn ids(n: u64) -> Vec<String> {
    (1..=n).map(member_id).collect()
}

fn answer(status: u16, body: &str) -> Option<MemberAnswer> {
    Some(MemberAnswer {
        status,
        headers: vec![("content-type".to_owned(), b"application/json".to_vec())],
        body: body.as_bytes().to_vec(),
    })
}

fn rest(responses: Value) -> Vec<u8> {
    json!({ "responses": responses }).to_string().into_bytes()
}

#[test]
fn rest_round_trip_as_the_demo_api_answers() {
    // In request order, as the demo answers.
    let body = rest(json!([
        {"id": "m1", "status": 200, "headers": {"content-type": "application/json"},
         "body": "{\"id\":7,\"call\":1}"},
        {"id": "m2", "status": 201, "headers": {"content-type": "application/json"},
         "body": "{\"ok\":true}"},
    ]));
    assert_eq!(
        decode(Format::Rest, &body, &ids(2)),
        vec![
            answer(200, "{\"id\":7,\"call\":1}"),
            answer(201, "{\"ok\":true}")
        ]
    );
}

#[test]
fn rest_answers_are_matched_by_id() {
    let slot = |id: &str, status: u16| json!({"id": id, "status": status, "body": id});
    let plain = |status: u16, body: &str| {
        Some(MemberAnswer {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        })
    };
    let cases: Vec<(&str, Value, Vec<Option<MemberAnswer>>)> = vec![
        (
            "out of order",
            json!([slot("m3", 203), slot("m1", 201), slot("m2", 202)]),
            vec![plain(201, "m1"), plain(202, "m2"), plain(203, "m3")],
        ),
        (
            "a member missing",
            json!([slot("m1", 201), slot("m3", 203)]),
            vec![plain(201, "m1"), None, plain(203, "m3")],
        ),
        (
            "duplicates: first wins, even a malformed first",
            json!([
                slot("m1", 201),
                slot("m1", 299),
                slot("m2", 600),
                slot("m2", 202),
                slot("m3", 203)
            ]),
            vec![plain(201, "m1"), None, plain(203, "m3")],
        ),
        (
            "unknown ids and non-string ids are ignored",
            json!([slot("m9", 200), {"id": 1, "status": 200}, slot("m2", 202),
                   "junk", null]),
            vec![None, plain(202, "m2"), None],
        ),
    ];
    for (name, responses, want) in cases {
        assert_eq!(
            decode(Format::Rest, &rest(responses), &ids(3)),
            want,
            "{name}"
        );
    }
}

#[test]
fn rest_malformed_parts_are_none() {
    let cases: &[(&str, Value)] = &[
        ("status 99", json!({"id": "m1", "status": 99})),
        ("status 600", json!({"id": "m1", "status": 600})),
        ("status 70000", json!({"id": "m1", "status": 70000})),
        ("negative status", json!({"id": "m1", "status": -200})),
        ("fractional status", json!({"id": "m1", "status": 200.5})),
        ("status as a string", json!({"id": "m1", "status": "200"})),
        ("no status", json!({"id": "m1", "body": "x"})),
        (
            "headers as a list",
            json!({"id": "m1", "status": 200, "headers": ["a"]}),
        ),
        (
            "header value a number",
            json!({"id": "m1", "status": 200, "headers": {"a": 1}}),
        ),
    ];
    for (name, part) in cases {
        assert_eq!(
            decode(Format::Rest, &rest(json!([part])), &ids(1)),
            vec![None],
            "{name}"
        );
    }
    for status in [100, 599] {
        let ok = rest(json!([{"id": "m1", "status": status}]));
        assert_eq!(
            decode(Format::Rest, &ok, &ids(1))[0]
                .as_ref()
                .map(|a| a.status),
            Some(status)
        );
    }
}

#[test]
fn rest_bodies_of_any_json_value() {
    let cases: &[(Value, &str)] = &[
        (json!("text"), "text"),
        (json!(""), ""),
        (json!({"a": [1, 2]}), "{\"a\":[1,2]}"),
        (json!([true]), "[true]"),
        (json!(42), "42"),
        (json!(false), "false"),
        (Value::Null, ""),
    ];
    for (value, want) in cases {
        let body = rest(json!([{"id": "m1", "status": 200, "body": value}]));
        let got = decode(Format::Rest, &body, &ids(1));
        assert_eq!(
            got[0].as_ref().map(|a| a.body.as_slice()),
            Some(want.as_bytes()),
            "{value}"
        );
    }
    let absent = rest(json!([{"id": "m1", "status": 204}]));
    assert_eq!(
        decode(Format::Rest, &absent, &ids(1)),
        vec![Some(MemberAnswer {
            status: 204,
            headers: Vec::new(),
            body: Vec::new()
        })]
    );
}

#[test]
fn unparseable_answers_are_all_none() {
    let bodies: &[&[u8]] = &[
        b"",
        b"not json",
        b"{\"responses\":[",
        b"\xff\xfe",
        b"{\"responses\":{}}",
        b"{\"other\":[]}",
        b"[]",
        b"null",
    ];
    for body in bodies {
        assert_eq!(
            decode(Format::Rest, body, &ids(2)),
            vec![None, None],
            "{body:?}"
        );
    }
    for body in [&b""[..], b"garbage", b"{\"data\":1}", b"\"x\"", b"[1,"] {
        assert_eq!(
            decode(Format::Graphql, body, &ids(2)),
            vec![None, None],
            "{body:?}"
        );
    }
    assert!(decode(Format::Rest, b"garbage", &[]).is_empty());
}

#[test]
fn graphql_answers_by_position() {
    let body = br#"[{"data":{"quote":{"id":1}}}, {"errors":[{"message":"x"}]}]"#;
    assert_eq!(
        decode(Format::Graphql, body, &ids(2)),
        vec![
            answer(200, r#"{"data":{"quote":{"id":1}}}"#),
            answer(200, r#"{"errors":[{"message":"x"}]}"#),
        ]
    );
    assert_eq!(
        decode(Format::Graphql, body, &ids(3)),
        vec![
            answer(200, r#"{"data":{"quote":{"id":1}}}"#),
            answer(200, r#"{"errors":[{"message":"x"}]}"#),
            None,
        ],
        "a short array leaves the rest None"
    );
    assert_eq!(
        decode(Format::Graphql, body, &ids(1)).len(),
        1,
        "extra elements ignored"
    );
    assert_eq!(decode(Format::Graphql, b"[]", &ids(2)), vec![None, None]);
}

#[test]
fn answer_part_headers_lose_framing_and_hop_by_hop_fields() {
    let body = rest(json!([{"id": "m1", "status": 200, "headers": {
        "content-type": "text/plain", "content-length": "999", "connection": "x-a",
        "x-a": "1", "transfer-encoding": "chunked", "cache-control": "max-age=5"}}]));
    let got = decode(Format::Rest, &body, &ids(1));
    let headers = got[0]
        .as_ref()
        .map(|a| a.headers.clone())
        .unwrap_or_default();
    assert_eq!(
        headers,
        vec![
            ("cache-control".to_owned(), b"max-age=5".to_vec()),
            ("content-type".to_owned(), b"text/plain".to_vec()),
        ]
    );
}

proptest::proptest! {
    #[test]
    fn decode_never_panics_and_keeps_one_slot_per_id(
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
        n in 0usize..5,
    ) {
        let ids: Vec<String> = (0..n as u64).map(member_id).collect();
        for format in [Format::Rest, Format::Graphql] {
            proptest::prop_assert_eq!(decode(format, &body, &ids).len(), n);
        }
    }
}
