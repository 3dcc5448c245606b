//! The image of the real filter: the built module
//! (`target/wasm32-wasip1/release/cost_optimizer.wasm`, `make build`; or
//! the one `OPTIMIZER_WASM` names). A relative path is taken from the
//! workspace root, not from this crate's directory where `cargo test`
//! runs the test. A missing module fails the test, as the end-to-end
//! tests do: `make test` builds it first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use cost_optimizer_image::{build, write_outputs, Options};

use common::{files_under, read_layout, sha256, tar_files};

#[test]
fn real_filter_image() {
    let path = std::env::var_os("OPTIMIZER_WASM")
        .unwrap_or_else(|| "target/wasm32-wasip1/release/cost_optimizer.wasm".into());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    let wasm = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make build` first)", path.display()));

    let tmp = tempfile::tempdir().unwrap();
    let image = build(&wasm, &Options::new()).unwrap();
    let written = write_outputs(&image, tmp.path()).unwrap();
    let reference = format!("cost-optimizer:{}", env!("CARGO_PKG_VERSION"));

    let files = files_under(&written.layout);
    let read = read_layout(&files, &reference);
    assert_eq!(read.wasm, wasm);
    assert_eq!(read.wasm_digest, format!("sha256:{}", sha256(&wasm)));
    assert_eq!(read.manifest_digest, image.manifest_digest);
    assert_eq!(tar_files(&std::fs::read(&written.tar).unwrap()), files);
    // The proxy-wasm SDK's ABI export, found in the module itself.
    let abi = read.config["abiVersions"].as_array().unwrap_or_else(|| {
        panic!("no abiVersions in {}", read.config);
    });
    assert!(
        abi.iter().any(|v| v
            .as_str()
            .is_some_and(|s| s.starts_with("proxy_abi_version_"))),
        "{abi:?}"
    );
    assert_eq!(
        build(&wasm, &Options::new()).unwrap(),
        image,
        "deterministic"
    );
    eprintln!(
        "{}: manifest {}, wasm {}",
        path.display(),
        image.manifest_digest,
        image.wasm_sha256
    );
}
