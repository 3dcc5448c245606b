//! An independent reader of what the image tool writes: it uses none of
//! the crate's code, only the OCI image layout and ustar formats as their
//! specs state them, so a bug shared by writer and reader cannot hide.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const FAKE_WASM_HEADER: &[u8] = b"\0asm\x01\0\0\0";

/// A module header and a payload that is not code: the tool must carry
/// the bytes unchanged whatever they are.
pub fn fake_wasm(seed: u8) -> Vec<u8> {
    let mut w = FAKE_WASM_HEADER.to_vec();
    w.extend((0..3000u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    w
}

pub fn sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Every regular file under `dir`, by its `/`-separated path inside it.
pub fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap();
                let rel: Vec<_> = rel.iter().map(|c| c.to_str().unwrap()).collect();
                out.insert(rel.join("/"), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What a layout holds, once every check passed.
pub struct Read {
    pub manifest_digest: String,
    pub wasm: Vec<u8>,
    pub wasm_digest: String,
    pub config: Value,
    pub manifest: Value,
    pub index: Value,
}

fn json(files: &BTreeMap<String, Vec<u8>>, path: &str) -> Value {
    let b = files
        .get(path)
        .unwrap_or_else(|| panic!("the layout has no {path}"));
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// The blob a descriptor names, after checking the digest's form, that the
/// blob exists, and that its size and sha256 are the descriptor's.
fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, d: &Value, used: &mut Vec<String>) -> &'a [u8] {
    let digest = d["digest"].as_str().expect("a descriptor has a digest");
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{digest} is not a sha256 digest"));
    assert!(
        hex.len() == 64 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
        "{digest}: not 64 lowercase hex digits"
    );
    let path = format!("blobs/sha256/{hex}");
    let b = files
        .get(&path)
        .unwrap_or_else(|| panic!("no blob {path} for {digest}"));
    assert_eq!(sha256(b), hex, "{path}: content does not match its digest");
    assert_eq!(d["size"].as_u64(), Some(b.len() as u64), "{path}: size");
    used.push(path);
    b
}

/// Reads and checks a layout given as its files: layout version, the one
/// manifest the index names under `reference`, media types, every
/// descriptor's digest and size, titles, the runtime config, and that the
/// layout holds no file nothing refers to.
pub fn read_layout(files: &BTreeMap<String, Vec<u8>>, reference: &str) -> Read {
    let mut used = vec!["oci-layout".to_string(), "index.json".to_string()];
    assert_eq!(
        json(files, "oci-layout"),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );

    let index = json(files, "index.json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().expect("index.manifests");
    assert_eq!(manifests.len(), 1, "one image in the layout");
    let md = &manifests[0];
    assert_eq!(
        md["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        md["annotations"]["org.opencontainers.image.ref.name"],
        reference
    );
    let manifest_bytes = blob(files, md, &mut used);
    let manifest: Value = serde_json::from_slice(manifest_bytes).expect("manifest JSON");

    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let cd = &manifest["config"];
    assert_eq!(
        cd["mediaType"],
        "application/vnd.module.wasm.config.v1+json"
    );
    let config_bytes = blob(files, cd, &mut used);
    let config: Value = serde_json::from_slice(config_bytes).expect("config JSON");

    // Istio's fetcher takes the oci variant with exactly two layers; it
    // picks the Wasm one by media type.
    let layers = manifest["layers"].as_array().expect("manifest.layers");
    assert_eq!(layers.len(), 2, "{layers:?}");
    assert_eq!(layers[0]["mediaType"], cd["mediaType"]);
    assert_eq!(layers[0]["digest"], cd["digest"]);
    assert_eq!(layers[0]["size"], cd["size"]);
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "runtime-config.json"
    );
    let wd = &layers[1];
    assert_eq!(
        wd["mediaType"],
        "application/vnd.module.wasm.content.layer.v1+wasm"
    );
    assert_eq!(
        wd["annotations"]["org.opencontainers.image.title"],
        "plugin.wasm"
    );
    let wasm = blob(files, wd, &mut used).to_vec();
    let wasm_digest = wd["digest"].as_str().unwrap().to_string();

    assert_eq!(config["type"], "envoy_proxy");
    assert_eq!(config["layerDigests"], serde_json::json!([wasm_digest]));
    assert!(config["config"]["root_ids"].is_array(), "{config}");
    assert!(
        config.get("created").is_none(),
        "a timestamp breaks determinism"
    );

    let mut unused: Vec<_> = files.keys().filter(|p| !used.contains(p)).collect();
    unused.sort();
    assert!(unused.is_empty(), "files nothing refers to: {unused:?}");

    Read {
        manifest_digest: md["digest"].as_str().unwrap().to_string(),
        wasm,
        wasm_digest,
        config,
        manifest,
        index,
    }
}

/// One ustar entry.
pub struct Entry {
    pub name: String,
    pub kind: u8,
    pub data: Vec<u8>,
}

fn octal(field: &[u8]) -> u64 {
    let s = std::str::from_utf8(field).unwrap();
    let s = s.trim_matches(|c| c == '\0' || c == ' ');
    u64::from_str_radix(s, 8).unwrap_or_else(|e| panic!("octal field {field:?}: {e}"))
}

/// Reads a ustar archive, checking each header's checksum and magic, that
/// mtime, uid and gid are 0 (determinism), that the archive ends with two
/// zero blocks, and that entries come sorted by name.
pub fn read_tar(t: &[u8]) -> Vec<Entry> {
    assert_eq!(t.len() % 512, 0, "not whole blocks");
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let h = &t[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            assert!(
                t[pos + 512..pos + 1024].iter().all(|&b| b == 0),
                "one zero block, then data"
            );
            assert!(
                t[pos..].iter().all(|&b| b == 0),
                "data after the end marker"
            );
            break;
        }
        let mut blank = [0u8; 512];
        blank.copy_from_slice(h);
        blank[148..156].fill(b' ');
        let sum: u64 = blank.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(octal(&h[148..156]), sum, "header checksum at {pos}");
        assert_eq!(&h[257..263], b"ustar\0", "ustar magic");
        assert_eq!(&h[263..265], b"00", "ustar version");
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let prefix_end = h[345..500].iter().position(|&b| b == 0).unwrap_or(155);
        assert_eq!(prefix_end, 0, "no prefix field used");
        let name = String::from_utf8(h[..name_end].to_vec()).unwrap();
        assert_eq!(octal(&h[136..148]), 0, "{name}: mtime");
        assert_eq!(octal(&h[108..116]), 0, "{name}: uid");
        assert_eq!(octal(&h[116..124]), 0, "{name}: gid");
        let kind = h[156];
        let size = octal(&h[124..136]) as usize;
        match kind {
            b'0' => assert!(!name.ends_with('/'), "{name}"),
            b'5' => {
                assert!(name.ends_with('/'), "{name}");
                assert_eq!(size, 0, "{name}");
            }
            k => panic!("{name}: entry type {k} in an image layout tar"),
        }
        let data = t[pos + 512..pos + 512 + size].to_vec();
        pos += 512 + size.div_ceil(512) * 512;
        out.push(Entry { name, kind, data });
    }
    let names: Vec<_> = out.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries not in order");
    out
}

/// The regular files of a tar, by name, after checking that every
/// directory entry comes before anything in it.
pub fn tar_files(t: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let entries = read_tar(t);
    let mut dirs_seen = Vec::new();
    let mut files = BTreeMap::new();
    for e in entries {
        if let Some((parent, _)) = e.name.trim_end_matches('/').rsplit_once('/') {
            assert!(
                dirs_seen.contains(&format!("{parent}/")),
                "{} before its directory",
                e.name
            );
        }
        if e.kind == b'5' {
            dirs_seen.push(e.name);
        } else {
            assert!(
                files.insert(e.name.clone(), e.data).is_none(),
                "{} twice",
                e.name
            );
        }
    }
    files
}
