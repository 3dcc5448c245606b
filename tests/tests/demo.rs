//! `make demo` end to end: its own stack (shipped config, cost-control),
//! the seeded workload, and a table whose money comes from the ledger.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

/// The row of `strategy`, split on whitespace.
fn row<'a>(out: &'a str, strategy: &str) -> Vec<&'a str> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&strategy))
        .unwrap_or_else(|| panic!("no {strategy} row in:\n{out}"))
}

fn dollars(s: &str) -> f64 {
    s.trim_start_matches('$').parse().unwrap()
}

#[test]
fn make_demo_prints_what_each_strategy_saved_from_the_ledger() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--own-stack")
        .output()
        .expect("run the demo binary");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{text}");
    // Columns: strategy, requests, upstream calls, ledger events, cost
    // with, cost without, saving $, saving %.
    for strategy in ["cache", "coalesced", "batched", "routed"] {
        let r = row(&text, strategy);
        assert_eq!(
            r[1], r[3],
            "every {strategy} request is in the ledger:\n{text}"
        );
        assert!(r[1].parse::<u64>().unwrap() > 0, "{text}");
        assert!(dollars(r[6]) > 0.0, "{strategy} saved nothing:\n{text}");
    }
    assert!(
        text.contains("failover: the secondary provider answered 503"),
        "{text}"
    );
    // The LLM part: prompt-cache hits and coalesced prompts, each in the
    // ledger at the model's price, saving it.
    for label in ["prompt-cache", "prompt-coalesced"] {
        let r = row(&text, label);
        assert!(r[1].parse::<u64>().unwrap() > 0, "no {label}:\n{text}");
        assert_eq!(
            r[1], r[3],
            "every {label} request is in the ledger:\n{text}"
        );
        assert_eq!(dollars(r[4]), 0.0, "{label} costs nothing");
        assert!(dollars(r[6]) > 0.0, "{label} saved nothing:\n{text}");
    }
    let up = row(&text, "prompt-upstream");
    assert_eq!(
        up[1], up[2],
        "each prompt that went upstream is one call:\n{text}"
    );
    assert!(!text.contains("errors (not in the table)"), "{text}");
    let cache = row(&text, "cache");
    assert_eq!(dollars(cache[4]), 0.0, "cache hits cost nothing");
    let total = row(&text, "total");
    assert!(
        dollars(total[5]) > dollars(total[4]),
        "the optimizer costs less than the baseline:\n{text}"
    );
}
