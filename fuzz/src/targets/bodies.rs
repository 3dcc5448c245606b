//! Bodies the filter reads from upstreams and from cost-control: batch
//! answers (REST envelope, GraphQL array), OpenAI-style `usage` bodies,
//! allowance grants and purge snapshots, and the spend buffer whose
//! batches cost-control must accept.

use std::collections::BTreeMap;

use optimizer_core::batch::{self, Format, Member};
use optimizer_core::cache::purges::{self, Mapping};
use optimizer_core::cache::snapshot::{self, PollEnd};
use optimizer_core::config::TokenPricing;
use optimizer_core::cost::budget;
use optimizer_core::cost::model::token_price;
use optimizer_core::cost::spend::{FlushOutcome, SpendBuffer, SpendEvent};
use optimizer_core::mem_host::MemHost;

use crate::input::{text, Input};

const NOW: u64 = 1_741_608_000_000;

// --- batch answers -------------------------------------------------------------------

/// An upstream's answer to a batch, split into member answers in both
/// formats; the same bytes as a member's body are encoded into a batch
/// (GraphQL members must be one JSON object), and the envelope written
/// must be JSON.
pub fn batch_answer(data: &[u8]) {
    let ids: Vec<String> = (1..=3).map(batch::member_id).collect();
    for format in [Format::Rest, Format::Graphql] {
        let parts = batch::decode(format, data, &ids);
        assert_eq!(parts.len(), ids.len());
        let member = Member {
            id: ids[0].clone(),
            method: "POST".into(),
            path: "/api/quotes/1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(data.to_vec()),
        };
        if batch::batchable_as(format, &member) {
            let envelope = batch::encode(format, &[member]);
            assert!(
                serde_json::from_slice::<serde_json::Value>(&envelope).is_ok(),
                "{format:?} envelope is not JSON"
            );
        }
    }
}

pub fn batch_answer_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"responses":[{"id":"m2","status":200,"headers":{"content-type":"application/json","connection":"x-a","x-a":"1"},"body":"{\"q\":2}"},{"id":"m1","status":404,"body":{"error":"nf"}},{"id":"m3","status":99},{"id":"m1","status":200}]}"#,
        r#"[{"data":{"a":1}},{"errors":[{"message":"x"}]},null,7]"#,
        r#"{"query":"{ a }","variables":{"x":1}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

// --- usage bodies -------------------------------------------------------------------

/// The token price of an OpenAI-style answer, under a pricing with a
/// default model and one without.
pub fn usage_body(data: &[u8]) {
    let mut models = BTreeMap::new();
    models.insert("gpt-4o".to_string(), (2_500u64, 10_000u64));
    models.insert("max".to_string(), (u64::MAX, u64::MAX));
    for default_model in [Some("gpt-4o".to_string()), None] {
        let pricing = TokenPricing {
            max_body_bytes: 65_536,
            models: models.clone(),
            default_model,
        };
        let _ = token_price(&pricing, data);
    }
}

pub fn usage_body_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"id":"c1","model":"gpt-4o","usage":{"prompt_tokens":120,"completion_tokens":48,"total_tokens":168}}"#,
        r#"{"model":"max","usage":{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615}}"#,
        r#"{"usage":{"prompt_tokens":1}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

// --- cost-control's answers -------------------------------------------------------------

/// cost-control's answer to `POST /v1/allowances`, put into the pool.
pub fn lease_grant(data: &[u8]) {
    let Some(g) = budget::parse_grant(data) else {
        return;
    };
    let mut host = MemHost::new();
    let _ = budget::create(&mut host, 2);
    for now in [NOW, 4_102_444_800_000] {
        let _ = budget::apply_grant(&mut host, 2, "acme", &g, now, 1_000);
        let _ = budget::read(&host, 2, "acme");
    }
}

pub fn lease_grant_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"allowance_id":"0123456789abcdef0123456789abcdef","tenant":"acme","service":"","granted_micros":20000,"expires_at_ms":1741608060000,"soft":false,"hard":false}"#,
        r#"{"allowance_id":null,"granted_micros":0,"soft":true,"hard":true}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// cost-control's `GET /v1/snapshot` body: parsed, its purges applied to
/// the generation counters, and its version recorded in the poll state.
pub fn purge_snapshot(data: &[u8]) {
    let Ok(snap) = snapshot::parse_snapshot(data) else {
        return;
    };
    let cfg = optimizer_core::config::parse(
        br#"{"version":1,"cache_store":{"generation_slots":64},"routes":[{"name":"a","match":{"prefix":"/a"},"cache":{"ignore_query":["utm"]}}]}"#,
    );
    let Ok(cfg) = cfg else {
        return;
    };
    let mapping = Mapping::of(&cfg);
    let mut host = MemHost::new();
    let _ = optimizer_core::cache::create_tables(&cfg, &mut host);
    let _ = purges::fingerprints(&snap.purges, &mapping);
    let _ = purges::apply(&mut host, &snap.purges, &mapping, None);
    let _ = snapshot::claim(&mut host, NOW, 1_000, 2_000, mapping.fingerprint);
    let _ = snapshot::finish(
        &mut host,
        PollEnd::Applied {
            version: &snap.version,
            mapping: mapping.fingerprint,
        },
    );
    let _ = snapshot::query_value(&snap.version);
    let _ = snapshot::claim(&mut host, NOW + 1_000, 1_000, 2_000, mapping.fingerprint);
}

pub fn purge_snapshot_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"version":"1741608000000-3","budgets":[],"purges":[{"tenant":"acme","kind":"prefix","value":"/a/","generation":3},{"tenant":"acme","kind":"key","value":"https://api.test/a/1?utm=1&b=2","generation":1},{"tenant":"acme","kind":"tag","value":"Items","generation":2},{"tenant":"x","kind":"new-kind","value":"v","generation":1}]}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

// --- the spend buffer ---------------------------------------------------------------------

/// A worker's spend buffer driven by the input: events (names of any
/// length and any characters, money and times of any size), flushes,
/// and every answer cost-control can give. Each batch body must be JSON
/// whose strings fit cost-control's bounds (else it refuses the whole
/// batch). Input: a byte of buffer size, then operations.
pub fn spend_buffer(data: &[u8]) {
    let mut input = Input::new(data);
    let mut buf = SpendBuffer::new("gw", input.u64(), usize::from(input.u8() % 8));
    let mut now = NOW;
    let mut ops = 0;
    while !input.is_empty() && ops < 64 {
        ops += 1;
        match input.u8() % 6 {
            0 | 1 => {
                let n = usize::from(input.u8());
                let tenant = text(input.bytes(n));
                let n = usize::from(input.u16() % 1200);
                let route = text(input.bytes(n));
                let n = usize::from(input.u8());
                let service = text(input.bytes(n));
                let (cost_micros, baseline_micros, ts_ms) = (input.u64(), input.u64(), input.u64());
                let allowance_id = if input.bool() {
                    let n = usize::from(input.u8());
                    Some(text(input.bytes(n)))
                } else {
                    None
                };
                buf.push(SpendEvent {
                    tenant,
                    service,
                    route,
                    provider: "p".into(),
                    strategy: "cache",
                    cost_micros,
                    baseline_micros,
                    ts_ms,
                    allowance_id,
                });
            }
            2 => {
                now = now.saturating_add(u64::from(input.u32()));
                let max_events = usize::from(input.u8());
                if let Some(b) = buf.next_batch(now, 1_000, max_events) {
                    check_batch(&b.body);
                }
            }
            3 => {
                let outcome = match input.u8() % 3 {
                    0 => FlushOutcome::Accepted,
                    1 => FlushOutcome::Rejected,
                    _ => FlushOutcome::Failed,
                };
                let _ = buf.on_result(now, outcome, input.u64(), 100, 60_000);
            }
            4 => {
                let _ = buf.expire(now, u64::from(input.u16()), input.u64(), 100, 60_000);
            }
            // The clock moves forward, by up to 49 days at a time.
            _ => now += u64::from(input.u32()),
        }
        let _ = (buf.pending(), buf.busy(), buf.parked());
    }
}

fn check_batch(body: &[u8]) {
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => panic!("spend batch is not JSON: {e}"),
    };
    let events = v["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    assert!(!events.is_empty(), "spend batch without events");
    for e in events {
        for (field, max) in [
            ("tenant", 200),
            ("service", 200),
            ("route", 1024),
            ("provider", 200),
            ("allowance_id", 200),
        ] {
            let len = e[field].as_str().map_or(0, str::len);
            assert!(
                len <= max,
                "{field} of {len} bytes: cost-control refuses it"
            );
        }
    }
}

pub fn spend_buffer_seeds() -> Vec<Vec<u8>> {
    let mut s = vec![0u8; 8];
    s.push(2);
    for _ in 0..3 {
        s.extend_from_slice(&[0, 4]);
        s.extend_from_slice(b"acme");
        s.extend_from_slice(&[5, 0]);
        s.extend_from_slice(b"/a/1?");
        s.push(0);
        s.extend_from_slice(&2_000u64.to_le_bytes());
        s.extend_from_slice(&4_000u64.to_le_bytes());
        s.extend_from_slice(&NOW.to_le_bytes());
        s.push(0);
    }
    s.extend_from_slice(&[2, 0x10, 0x27, 0, 0, 10, 3, 2]);
    s.extend_from_slice(&[2, 0x10, 0x27, 0, 0, 10, 3, 1]);
    vec![s]
}

// --- LLM prompts and streamed answers ----------------------------------------------------

/// A prompt rule's request body: read as a prompt, and its canonical form
/// read again must be the same prompt (the key is stable).
pub fn prompt_body(data: &[u8]) {
    use optimizer_core::config::RoutePrompt;
    use optimizer_core::prompt;
    let rule = RoutePrompt {
        max_body_bytes: 65_536,
        ignore_fields: vec!["user".into(), "metadata".into()],
        nondeterministic: false,
    };
    let Ok(facts) = prompt::read(&rule, data) else {
        return;
    };
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        panic!("read a prompt from a body that is not a JSON object");
    };
    let mut canonical = String::new();
    prompt::canonical_json(&mut canonical, &serde_json::Value::Object(fields));
    if canonical.len() <= 65_536 {
        let again = prompt::read(&rule, canonical.as_bytes())
            .unwrap_or_else(|e| panic!("canonical form of a prompt not read: {e:?}"));
        assert_eq!(
            again.digest, facts.digest,
            "the canonical form is another prompt"
        );
    }
}

pub fn prompt_body_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"model":"gpt-4o","temperature":0,"messages":[{"role":"user","content":"hi"}],"user":"u"}"#,
        r#"{"model":"m","stream":true,"seed":7,"max_tokens":50,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":[{"type":"text","text":"é\n"}]}]}"#,
        r#"{"prompt":"x","temperature":0.0,"n":2,"logit_bias":{"50256":-100}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// A streamed answer read in pieces (the first byte says where to cut):
/// the price does not depend on how the stream was cut into chunks.
pub fn event_stream(data: &[u8]) {
    use optimizer_core::cost::stream_usage::StreamUsage;
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let mut models = BTreeMap::new();
    models.insert("gpt-4o".to_string(), (2_500u64, 10_000u64));
    models.insert("max".to_string(), (u64::MAX, u64::MAX));
    let pricing = TokenPricing {
        max_body_bytes: 4096,
        models,
        default_model: Some("gpt-4o".to_string()),
    };
    let read = |piece: usize| {
        let mut s = StreamUsage::new(4096);
        for p in body.chunks(piece.max(1)) {
            s.feed(p);
        }
        s.finish();
        (s.price(&pricing, Some("max"), 3), s.content_events, s.done)
    };
    let whole = read(body.len());
    assert_eq!(
        read(usize::from(cut)),
        whole,
        "a cut into {cut}-byte pieces prices otherwise"
    );
}

pub fn event_stream_seeds() -> Vec<Vec<u8>> {
    [
        "\x07data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n",
        "\x01event: x\r\ndata: {\"usage\":\r\ndata: {\"prompt_tokens\":1}}\r\n\r\n",
        "\x05data: {\"choices\":[]}\n\ndata: {\"choi",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}
