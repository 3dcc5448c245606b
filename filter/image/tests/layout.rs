//! The image of a small fake module, written to a temporary directory and
//! read back by the independent reader in `common`: layout, manifest,
//! config, digests, the module byte for byte, the tarball, determinism.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;

use cost_optimizer_image::{build, write_outputs, Options};

use common::{fake_wasm, files_under, read_layout, sha256, tar_files};

fn opts(reference: &str) -> Options {
    Options {
        reference: reference.to_string(),
        ..Options::new()
    }
}

#[test]
fn layout_reads_back_with_the_module_unchanged() {
    let wasm = fake_wasm(1);
    let tmp = tempfile::tempdir().unwrap();
    let image = build(&wasm, &opts("cost-optimizer:0.1.0")).unwrap();
    let written = write_outputs(&image, tmp.path()).unwrap();

    let files = files_under(&written.layout);
    let read = read_layout(&files, "cost-optimizer:0.1.0");
    assert_eq!(read.wasm, wasm, "the layer is the module, byte for byte");
    assert_eq!(read.wasm_digest, format!("sha256:{}", sha256(&wasm)));
    assert_eq!(image.wasm_sha256, sha256(&wasm));
    assert_eq!(read.manifest_digest, image.manifest_digest);
    assert_eq!(
        read.config["config"]["root_ids"],
        serde_json::json!(["cost_optimizer"])
    );
    // The fake module exports nothing, so no ABI is claimed for it.
    assert!(read.config.get("abiVersions").is_none(), "{}", read.config);

    assert_eq!(
        fs::read_to_string(&written.digests).unwrap(),
        format!(
            "manifest {}\nwasm {}\n",
            read.manifest_digest,
            sha256(&wasm)
        )
    );
    // The layout written is the one built in memory, no more, no less.
    assert_eq!(files, image.files);
}

#[test]
fn tarball_holds_exactly_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build(&fake_wasm(2), &opts("cost-optimizer:0.1.0")).unwrap();
    let written = write_outputs(&image, tmp.path()).unwrap();
    assert_eq!(written.tar, tmp.path().join("cost-optimizer-oci.tar"));

    let from_tar = tar_files(&fs::read(&written.tar).unwrap());
    assert_eq!(from_tar, files_under(&written.layout));
    read_layout(&from_tar, "cost-optimizer:0.1.0");
}

#[test]
fn two_builds_are_byte_identical() {
    let wasm = fake_wasm(3);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ia = build(&wasm, &opts("cost-optimizer:0.1.0")).unwrap();
    let ib = build(&wasm, &opts("cost-optimizer:0.1.0")).unwrap();
    let wa = write_outputs(&ia, a.path()).unwrap();
    let wb = write_outputs(&ib, b.path()).unwrap();
    assert_eq!(ia, ib);
    assert_eq!(fs::read(wa.tar).unwrap(), fs::read(wb.tar).unwrap());
    assert_eq!(fs::read(wa.digests).unwrap(), fs::read(wb.digests).unwrap());
    assert_eq!(files_under(&wa.layout), files_under(&wb.layout));
}

#[test]
fn retagging_keeps_the_manifest_digest() {
    let wasm = fake_wasm(4);
    let a = build(&wasm, &opts("cost-optimizer:0.1.0")).unwrap();
    let b = build(&wasm, &opts("registry.example/x/cost-optimizer:dev")).unwrap();
    assert_eq!(a.manifest_digest, b.manifest_digest);
    assert_ne!(a.files["index.json"], b.files["index.json"]);
}

#[test]
fn another_module_gives_other_digests_and_replaces_the_old_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let first = build(&fake_wasm(5), &opts("cost-optimizer:0.1.0")).unwrap();
    write_outputs(&first, tmp.path()).unwrap();
    let second = build(&fake_wasm(6), &opts("cost-optimizer:0.1.0")).unwrap();
    let written = write_outputs(&second, tmp.path()).unwrap();
    assert_ne!(first.manifest_digest, second.manifest_digest);
    assert_ne!(first.wasm_sha256, second.wasm_sha256);
    // read_layout fails on a blob nothing refers to: none of the first
    // module's is left behind.
    let read = read_layout(&files_under(&written.layout), "cost-optimizer:0.1.0");
    assert_eq!(read.wasm, fake_wasm(6));
    // Nor a temporary file of the write.
    let mut names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cost-optimizer-oci.tar", "digests.txt", "oci"]);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(build(b"", &Options::new()).is_err());
    assert!(build(b"PK\x03\x04 not wasm", &Options::new()).is_err());
    assert!(build(&fake_wasm(7), &opts("bad ref")).is_err());
    let no_root = Options {
        root_ids: vec![String::new()],
        ..Options::new()
    };
    assert!(build(&fake_wasm(7), &no_root).is_err());
}

/// The repository's WasmPlugins carry a placeholder `sha256`; pinning
/// sets it to the image digest Istio checks an `oci://` url against, and
/// refuses a manifest without the placeholder.
#[test]
fn the_shipped_wasmplugins_are_pinned_to_the_image_digest() {
    let image = build(&fake_wasm(3), &opts("cost-optimizer:0.1.0")).unwrap();
    let hex = image.manifest_digest.strip_prefix("sha256:").unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for name in ["wasmplugin-gateway.yaml", "wasmplugin-sidecar.yaml"] {
        let text = fs::read_to_string(root.join("istio").join(name)).unwrap();
        let pinned = cost_optimizer_image::pin_wasmplugin(&text, &image)
            .unwrap_or_else(|| panic!("{name} has no placeholder sha256"));
        assert!(pinned.contains(&format!("  sha256: {hex}\n")), "{name}");
        assert!(!pinned.contains(cost_optimizer_image::PLACEHOLDER_SHA256));
        assert_eq!(pinned.len(), text.len(), "only the digest changed");
    }
    assert_eq!(
        cost_optimizer_image::pin_wasmplugin("sha256: abc\n", &image),
        None
    );
}
