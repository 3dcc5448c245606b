//! `cost-optimizer-image` as `make image` runs it: what it prints and
//! writes, and that bad input ends in a message and exit status 1, never a
//! panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{fake_wasm, files_under, read_layout, sha256};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cost-optimizer-image"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run cost-optimizer-image")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit status 1, the cause on stderr, nothing on stdout, no panic.
fn fails(out: &Output, cause: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(cause), "want {cause:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn writes_the_image_and_prints_its_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let wasm = fake_wasm(9);
    fs::write(tmp.path().join("m.wasm"), &wasm).unwrap();
    let out = run(
        tmp.path(),
        &[
            "--wasm",
            "m.wasm",
            "--out",
            "img",
            "--ref",
            "cost-optimizer:test",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout,
        fs::read_to_string(tmp.path().join("img/digests.txt")).unwrap()
    );
    let read = read_layout(
        &files_under(&tmp.path().join("img/oci")),
        "cost-optimizer:test",
    );
    assert_eq!(
        stdout,
        format!(
            "manifest {}\nwasm {}\n",
            read.manifest_digest,
            sha256(&wasm)
        )
    );
    assert!(tmp.path().join("img/cost-optimizer-oci.tar").is_file());
}

#[test]
fn defaults_are_the_release_module_and_target_image() {
    let tmp = tempfile::tempdir().unwrap();
    let rel = tmp.path().join("target/wasm32-wasip1/release");
    fs::create_dir_all(&rel).unwrap();
    fs::write(rel.join("cost_optimizer.wasm"), fake_wasm(10)).unwrap();
    let out = run(tmp.path(), &["--root-id", "a", "--root-id", "b"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reference = format!("cost-optimizer:{}", env!("CARGO_PKG_VERSION"));
    let read = read_layout(
        &files_under(&tmp.path().join("target/image/oci")),
        &reference,
    );
    assert_eq!(
        read.config["config"]["root_ids"],
        serde_json::json!(["a", "b"])
    );
}

#[test]
fn missing_module() {
    let tmp = tempfile::tempdir().unwrap();
    fails(
        &run(tmp.path(), &["--wasm", "nope.wasm"]),
        "cannot read nope.wasm",
    );
}

#[test]
fn not_a_module() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("x.wasm"), b"#!/bin/sh\necho hi\n").unwrap();
    fails(
        &run(tmp.path(), &["--wasm", "x.wasm"]),
        "not a WebAssembly module",
    );
}

#[test]
fn bad_reference() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("m.wasm"), fake_wasm(11)).unwrap();
    fails(
        &run(tmp.path(), &["--wasm", "m.wasm", "--ref", "Cost Optimizer"]),
        "bad image reference",
    );
}

#[test]
fn output_that_is_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("m.wasm"), fake_wasm(12)).unwrap();
    fs::write(tmp.path().join("out"), b"").unwrap();
    fails(
        &run(tmp.path(), &["--wasm", "m.wasm", "--out", "out"]),
        "cannot create out",
    );
}

#[test]
fn bad_usage() {
    let tmp = tempfile::tempdir().unwrap();
    fails(&run(tmp.path(), &["--frobnicate"]), "unknown argument");
    fails(&run(tmp.path(), &["--wasm"]), "--wasm needs a value");
    fails(&run(tmp.path(), &["stray.wasm"]), "unknown argument");
}

#[test]
fn help() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), &["--help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("usage: cost-optimizer-image"));
}
