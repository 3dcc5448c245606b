//! The filter's `.wasm` as an OCI image that Istio's WasmPlugin pulls from
//! a registry (`url: oci://…`), written here without Docker or a network:
//! an OCI image layout directory and the same layout as one tar, for
//! `skopeo copy oci-archive:…`, `crane push` or `oras cp --from-oci-layout`
//! to push.
//!
//! The image is the *oci* variant of the Wasm image spec
//! (solo-io/wasm, `spec/spec.md`), the one with the Wasm-specific media
//! types; the spec's *compat* variant is the other one, a gzipped tar layer
//! holding `plugin.wasm`. Istio's agent (`pkg/wasm/imagefetcher.go`) accepts
//! the oci variant only with exactly two manifest layers, the config JSON
//! and the raw module, so the config blob is both the manifest's config and
//! the first layer, as the spec's own tool (`wasme push`) wrote it. One layer
//! alone is refused there ("number of layers must be 2 but got 1").
//!
//! Every byte is a function of the module and the options: no timestamps,
//! compact JSON with a fixed key order, so the same `.wasm` gives the same
//! digests on every run and every machine.

pub mod tar;
pub mod wasm;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The module's file name in the image: what the spec names it, and what
/// `oras pull` writes it as.
pub const WASM_TITLE: &str = "plugin.wasm";
/// The config layer's file name, the spec's.
pub const CONFIG_TITLE: &str = "runtime-config.json";

/// The spec's runtime type for an Envoy Wasm filter.
pub const RUNTIME_TYPE: &str = "envoy_proxy";
/// The filter's root id, as envoy/envoy.yaml configures it (Istio: the
/// WasmPlugin's `pluginName`).
pub const DEFAULT_ROOT_ID: &str = "cost_optimizer";

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
pub const INDEX_FILE: &str = "index.json";

/// What `write_outputs` puts under its directory.
pub const LAYOUT_DIR: &str = "oci";
pub const TAR_FILE: &str = "cost-optimizer-oci.tar";
pub const DIGESTS_FILE: &str = "digests.txt";

/// Why an image could not be built or written; the text names the cause
/// and, where there is one, the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error(format!("{what} {}: {e}", path.display()))
}

/// What goes into the image besides the module.
#[derive(Debug, Clone)]
pub struct Options {
    /// The image's reference in the layout's index.json
    /// (`org.opencontainers.image.ref.name`), e.g. `cost-optimizer:0.1.0`.
    pub reference: String,
    /// The root ids the module serves, for the runtime config.
    pub root_ids: Vec<String>,
}

impl Options {
    /// `cost-optimizer:<version>`: the version is the workspace's, which
    /// the filter crate shares.
    pub fn new() -> Self {
        Options {
            reference: default_reference(),
            root_ids: vec![DEFAULT_ROOT_ID.to_string()],
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

pub fn default_reference() -> String {
    format!("cost-optimizer:{}", env!("CARGO_PKG_VERSION"))
}

/// A built image: its digests and every file of its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `sha256:<hex>` of the manifest: the image's digest in a registry,
    /// and (as bare hex) what Istio's WasmPlugin `sha256` is checked
    /// against for an `oci://` URL.
    pub manifest_digest: String,
    /// `sha256:<hex>` of the config blob.
    pub config_digest: String,
    /// Hex sha256 of the module: the Wasm layer's digest, and what the
    /// WasmPlugin `sha256` is checked against for an `http(s)://` or
    /// `file://` URL.
    pub wasm_sha256: String,
    /// Every file of the layout by its path inside it, `/`-separated.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Image {
    /// The two lines of `digests.txt` (and of the binary's stdout).
    pub fn digests_text(&self) -> String {
        format!(
            "manifest {}\nwasm {}\n",
            self.manifest_digest, self.wasm_sha256
        )
    }
}

/// An OCI content descriptor.
#[derive(Serialize)]
struct Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: String,
    size: usize,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
struct Index<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    manifests: Vec<Descriptor<'a>>,
}

/// The `application/vnd.module.wasm.config.v1+json` document: the spec's
/// `type`, `abiVersions` and `config.root_ids`, and the module's digest so
/// the config names the bytes it describes. No `created`: a timestamp would
/// change the digests on every run.
#[derive(Serialize)]
struct RuntimeConfig<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(rename = "abiVersions", skip_serializing_if = "Vec::is_empty")]
    abi_versions: Vec<String>,
    config: RootIds<'a>,
    #[serde(rename = "layerDigests")]
    layer_digests: Vec<String>,
}

#[derive(Serialize)]
struct RootIds<'a> {
    root_ids: &'a [String],
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn json<T: Serialize>(v: &T, what: &str) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error(format!("cannot serialize the {what}: {e}")))
}

fn blob_path(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

/// Builds the image of `wasm` in memory.
pub fn build(wasm: &[u8], opts: &Options) -> Result<Image, Error> {
    wasm::check_header(wasm).map_err(Error)?;
    check_reference(&opts.reference)?;
    if opts.root_ids.is_empty() || opts.root_ids.iter().any(|r| r.is_empty()) {
        return Err(Error("a root id must not be empty".to_string()));
    }

    let wasm_hex = sha256_hex(wasm);
    let config = json(
        &RuntimeConfig {
            kind: RUNTIME_TYPE,
            abi_versions: wasm::abi_versions(wasm),
            config: RootIds {
                root_ids: &opts.root_ids,
            },
            layer_digests: vec![format!("sha256:{wasm_hex}")],
        },
        "runtime config",
    )?;
    let config_hex = sha256_hex(&config);

    let config_descriptor = |title: Option<&'static str>| Descriptor {
        media_type: WASM_CONFIG_MEDIA_TYPE,
        digest: format!("sha256:{config_hex}"),
        size: config.len(),
        annotations: title
            .map(|t| BTreeMap::from([(TITLE_ANNOTATION, t)]))
            .unwrap_or_default(),
    };
    let manifest = json(
        &Manifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE,
            config: config_descriptor(None),
            layers: vec![
                config_descriptor(Some(CONFIG_TITLE)),
                Descriptor {
                    media_type: WASM_LAYER_MEDIA_TYPE,
                    digest: format!("sha256:{wasm_hex}"),
                    size: wasm.len(),
                    annotations: BTreeMap::from([(TITLE_ANNOTATION, WASM_TITLE)]),
                },
            ],
        },
        "manifest",
    )?;
    let manifest_hex = sha256_hex(&manifest);

    // The reference lives only here, not in the manifest: retagging the
    // same module keeps the manifest digest a WasmPlugin may pin.
    let index = json(
        &Index {
            schema_version: 2,
            media_type: INDEX_MEDIA_TYPE,
            manifests: vec![Descriptor {
                media_type: MANIFEST_MEDIA_TYPE,
                digest: format!("sha256:{manifest_hex}"),
                size: manifest.len(),
                annotations: BTreeMap::from([(REF_NAME_ANNOTATION, opts.reference.as_str())]),
            }],
        },
        "index",
    )?;

    let files = BTreeMap::from([
        (OCI_LAYOUT_FILE.to_string(), OCI_LAYOUT.as_bytes().to_vec()),
        (INDEX_FILE.to_string(), index),
        (blob_path(&config_hex), config),
        (blob_path(&wasm_hex), wasm.to_vec()),
        (blob_path(&manifest_hex), manifest),
    ]);
    Ok(Image {
        manifest_digest: format!("sha256:{manifest_hex}"),
        config_digest: format!("sha256:{config_hex}"),
        wasm_sha256: wasm_hex,
        files,
    })
}

/// The grammar the image spec gives `org.opencontainers.image.ref.name`:
/// components of alphanumerics joined by one of `-._:@+` or `--`,
/// separated by `/`. Checked here because skopeo and containerd refuse a
/// layout whose reference breaks it, long after this tool said "ok".
pub fn check_reference(r: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Err(Error(format!(
            "bad image reference {r:?}: {why} (expected e.g. cost-optimizer:0.1.0)"
        )))
    };
    if r.is_empty() {
        return bad("empty");
    }
    for component in r.split('/') {
        let b = component.as_bytes();
        let mut i = 0;
        loop {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            if i == start {
                return bad("each part must start and end with a letter or digit");
            }
            if i == b.len() {
                break;
            }
            let sep = i;
            while i < b.len() && !b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            match &b[sep..i] {
                [b'-' | b'.' | b'_' | b':' | b'@' | b'+'] | b"--" => {}
                _ => return bad("only one of - . _ : @ + (or --) may separate letters and digits"),
            }
        }
    }
    Ok(())
}

/// Where `write_outputs` wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub layout: PathBuf,
    pub tar: PathBuf,
    pub digests: PathBuf,
}

/// Writes the layout to `<out>/oci`, its tarball to
/// `<out>/cost-optimizer-oci.tar` and the digests to `<out>/digests.txt`.
///
/// The layout is written beside the old one and swapped in, so a layout
/// never holds blobs of an earlier module, and a failed run leaves the last
/// good one. The tar is kept outside the layout so it never archives
/// itself.
pub fn write_outputs(image: &Image, out: &Path) -> Result<Written, Error> {
    fs::create_dir_all(out).map_err(|e| io_err("cannot create", out, e))?;
    let layout = out.join(LAYOUT_DIR);
    write_layout(image, &layout)?;
    let tar_path = out.join(TAR_FILE);
    write_file_atomic(&tar_path, &tar::archive(&image.files)?)?;
    let digests = out.join(DIGESTS_FILE);
    write_file_atomic(&digests, image.digests_text().as_bytes())?;
    Ok(Written {
        layout,
        tar: tar_path,
        digests,
    })
}

/// Writes the layout's files into `dir`, replacing a layout already there.
/// A `dir` that exists but holds no `oci-layout` is left alone, with an
/// error: it is not a layout this tool wrote, and it is not ours to delete.
pub fn write_layout(image: &Image, dir: &Path) -> Result<(), Error> {
    if dir.exists() && !dir.join(OCI_LAYOUT_FILE).is_file() {
        return Err(Error(format!(
            "refusing to replace {}: it exists and is not an OCI image layout",
            dir.display()
        )));
    }
    let staging = sibling(dir, &format!(".tmp-{}", std::process::id()))?;
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| io_err("cannot remove", &staging, e))?;
    }
    let result = (|| {
        for (rel, bytes) in &image.files {
            let path = staging.join(rel);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|e| io_err("cannot create", parent, e))?;
            }
            fs::write(&path, bytes).map_err(|e| io_err("cannot write", &path, e))?;
        }
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| io_err("cannot remove", dir, e))?;
        }
        fs::rename(&staging, dir).map_err(|e| io_err("cannot rename into", dir, e))
    })();
    if result.is_err() {
        // Best effort: the error being returned is the one worth reading.
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// `path` with `suffix` added to its last component.
fn sibling(path: &Path, suffix: &str) -> Result<PathBuf, Error> {
    let name = path
        .file_name()
        .ok_or_else(|| Error(format!("{} has no file name", path.display())))?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

/// Writes through a temporary file and a rename, so a reader (or a push
/// running alongside) never sees half a tarball.
fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = sibling(path, &format!(".tmp-{}", std::process::id()))?;
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| io_err("cannot create", &tmp, e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err("cannot write", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| io_err("cannot rename into", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The placeholder the repository's WasmPlugins carry in `sha256`.
pub const PLACEHOLDER_SHA256: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// A WasmPlugin manifest (`text`) with its placeholder `sha256` set to the
/// image's manifest digest (bare hex: with an `oci://` url Istio checks the
/// field against the image digest). `None` when the text has no
/// `sha256: <placeholder>` line, so a manifest that changed shape is not
/// written out unpinned.
pub fn pin_wasmplugin(text: &str, image: &Image) -> Option<String> {
    let hex = image.manifest_digest.strip_prefix("sha256:")?;
    let from = format!("sha256: {PLACEHOLDER_SHA256}");
    text.contains(&from)
        .then(|| text.replace(&from, &format!("sha256: {hex}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for ok in [
            "cost-optimizer:0.1.0",
            "0.1.0",
            "latest",
            "a/b:c",
            "registry.example.com/team/cost-optimizer:v1.2.3-rc.1",
            "x--y",
            "a@sha256",
        ] {
            assert_eq!(check_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", ":tag", "name:", "a//b", "a b", "a..b", "a:-b", "/a", "a/", "ä", "a---b",
        ] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_is_lowercase_sha256() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn refuses_to_replace_a_directory_that_is_not_a_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("oci");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("precious"), b"x").unwrap();
        let image = build(b"\0asm\x01\0\0\0", &Options::new()).unwrap();
        let err = write_layout(&image, &dir).unwrap_err();
        assert!(err.0.contains("not an OCI image layout"), "{err}");
        assert!(dir.join("precious").is_file());
    }
}
