use super::*;

fn rule() -> RoutePrompt {
    RoutePrompt {
        max_body_bytes: 4096,
        ignore_fields: vec!["user".into(), "metadata".into()],
        nondeterministic: false,
    }
}

fn facts(body: &str) -> PromptFacts {
    read(&rule(), body.as_bytes()).unwrap()
}

#[test]
fn key_order_whitespace_and_ignored_fields_do_not_change_the_digest() {
    let a = facts(r#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#);
    let b = facts(
        r#"{ "messages" : [ {"content":"hi", "role":"user"} ],
            "temperature": 0, "model": "m", "user": "alice", "metadata": {"x": 1} }"#,
    );
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.digest.len(), 64);
}

#[test]
fn anything_else_changes_the_digest() {
    let base = facts(r#"{"model":"m","temperature":0,"messages":[{"content":"hi"}]}"#).digest;
    for other in [
        r#"{"model":"n","temperature":0,"messages":[{"content":"hi"}]}"#,
        r#"{"model":"m","temperature":0,"messages":[{"content":"hi "}]}"#,
        r#"{"model":"m","temperature":0,"messages":[{"content":"hi"}],"stream":true}"#,
        r#"{"model":"m","temperature":0.5,"messages":[{"content":"hi"}]}"#,
        // Array order is meaning: the conversation's turns.
        r#"{"model":"m","temperature":0,"messages":[{"content":"hi"},{"content":"x"}]}"#,
    ] {
        assert_ne!(facts(other).digest, base, "{other}");
    }
}

#[test]
fn nested_key_order_is_canonical_too() {
    let mut a = String::new();
    canonical_json(
        &mut a,
        &serde_json::from_str(r#"{"b":{"y":1,"x":[2,{"q":3,"p":4}]},"a":"\u00e9\n"}"#).unwrap(),
    );
    assert_eq!(a, r#"{"a":"é\n","b":{"x":[2,{"p":4,"q":3}],"y":1}}"#);
}

#[test]
fn only_deterministic_prompts_are_shareable_by_default() {
    assert!(facts(r#"{"temperature":0}"#).shareable);
    assert!(facts(r#"{"temperature":0.0}"#).shareable);
    assert!(facts(r#"{"temperature":0.7,"seed":7}"#).shareable);
    assert!(!facts(r#"{"temperature":0.7}"#).shareable);
    // OpenAI's default temperature is 1: a prompt that says nothing is
    // not deterministic.
    assert!(!facts(r#"{"model":"m"}"#).shareable);
    assert!(!facts(r#"{"temperature":0.7,"seed":null}"#).shareable);
    let wide = RoutePrompt {
        nondeterministic: true,
        ..rule()
    };
    assert!(read(&wide, br#"{"temperature":0.7}"#).unwrap().shareable);
}

#[test]
fn facts_for_the_budget() {
    let f = facts(
        r#"{"model":"big","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"12345678"}]}"#,
    );
    assert_eq!(f.model.as_deref(), Some("big"));
    assert!(f.stream);
    assert_eq!(f.max_tokens, Some(50));
    // "user" + "12345678" = 12 bytes of text: 3 tokens.
    assert_eq!(f.prompt_tokens, 3);
    let g = facts(r#"{"max_completion_tokens":7,"max_tokens":50}"#);
    assert_eq!(g.max_tokens, Some(7));
    assert_eq!(g.prompt_tokens, 1);
    assert!(!g.stream);
}

#[test]
fn bodies_that_are_not_prompts() {
    assert_eq!(read(&rule(), b"not json"), Err(NotRead::NotJson));
    assert_eq!(read(&rule(), b"[1,2]"), Err(NotRead::NotAnObject));
    assert_eq!(read(&rule(), b""), Err(NotRead::NotJson));
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(5000));
    assert_eq!(read(&rule(), big.as_bytes()), Err(NotRead::TooLarge));
    // Deep nesting is refused by the parser, not a stack overflow.
    let deep = "[".repeat(3000);
    assert_eq!(read(&rule(), deep.as_bytes()), Err(NotRead::NotJson));
}

/// Found by fuzzing (`prompt_body`): without exact float parsing a
/// number's canonical text read again was another number, so the
/// canonical form of a prompt was another prompt.
#[test]
fn a_canonical_form_read_again_is_the_same_prompt() {
    let body =
        r#"{"prompt":"x","temperature":11848424146425975780.0,"n":2,"logit_bias":{"50256":-100}}"#;
    let once = facts(body);
    let mut canonical = String::new();
    canonical_json(&mut canonical, &serde_json::from_str(body).unwrap());
    assert_eq!(facts(&canonical).digest, once.digest);
}
