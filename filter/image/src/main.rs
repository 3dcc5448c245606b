//! `cost-optimizer-image`: the built filter as an OCI image for Istio's
//! WasmPlugin, written to disk for a push tool. Exit status 0 when written,
//! 1 on any error (bad usage included), with the reason on standard error.

use std::path::PathBuf;
use std::process::ExitCode;

use cost_optimizer_image::{
    build, pin_wasmplugin, write_outputs, Image, Options, DEFAULT_ROOT_ID, PLACEHOLDER_SHA256,
};

const DEFAULT_WASM: &str = "target/wasm32-wasip1/release/cost_optimizer.wasm";
const DEFAULT_OUT: &str = "target/image";

fn usage() -> String {
    format!(
        "\
usage: cost-optimizer-image [options]

Packs the filter's .wasm, unchanged, as an OCI image (Wasm image spec, oci
variant: the module and its runtime config as two layers) and writes
  OUT/oci/                    the OCI image layout
  OUT/cost-optimizer-oci.tar  the same layout as one tar
  OUT/digests.txt             the two lines printed on standard output:
    manifest sha256:<hex>     the image digest; a WasmPlugin with an oci://
                              url checks its sha256 field (bare hex) against it
    wasm <hex>                the module's sha256 (its layer's digest); what
                              sha256 is checked against for an http(s):// url
The same .wasm always gives the same digests. Push with e.g.
  skopeo copy oci-archive:OUT/cost-optimizer-oci.tar docker://REGISTRY/REPO:TAG
  crane push OUT/oci REGISTRY/REPO:TAG

options:
  --wasm PATH     the module, default {DEFAULT_WASM}
  --out DIR       default {DEFAULT_OUT}
  --ref NAME:TAG  the reference in the layout's index.json, default {}
  --root-id ID    a root id the module serves, for the runtime config
                  (repeatable), default {DEFAULT_ROOT_ID}
  --istio DIR     also write OUT/istio/<name> for each wasmplugin-*.yaml in
                  DIR with its placeholder sha256 set to the image digest
  -h, --help      this text

Relative paths are taken from the current directory.",
        cost_optimizer_image::default_reference()
    )
}

struct Args {
    wasm: PathBuf,
    out: PathBuf,
    opts: Options,
    istio: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut wasm = PathBuf::from(DEFAULT_WASM);
    let mut out = PathBuf::from(DEFAULT_OUT);
    let mut opts = Options::new();
    let mut root_ids = Vec::new();
    let mut istio = None;
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--wasm" => wasm = PathBuf::from(value("--wasm")?),
            "--out" => out = PathBuf::from(value("--out")?),
            "--ref" => opts.reference = value("--ref")?,
            "--root-id" => root_ids.push(value("--root-id")?),
            "--istio" => istio = Some(PathBuf::from(value("--istio")?)),
            s => return Err(format!("unknown argument {s:?}")),
        }
    }
    if !root_ids.is_empty() {
        opts.root_ids = root_ids;
    }
    Ok(Some(Args {
        wasm,
        out,
        opts,
        istio,
    }))
}

fn run(args: &Args) -> Result<String, String> {
    let wasm = std::fs::read(&args.wasm).map_err(|e| {
        format!(
            "cannot read {}: {e} (run `make wasm` first, or give --wasm PATH)",
            args.wasm.display()
        )
    })?;
    let image = build(&wasm, &args.opts).map_err(|e| format!("{}: {e}", args.wasm.display()))?;
    let written = write_outputs(&image, &args.out).map_err(|e| e.to_string())?;
    eprintln!(
        "==> {} ({} bytes) as {}:\n    layout  {}\n    tarball {}\n    digests {}",
        args.wasm.display(),
        wasm.len(),
        args.opts.reference,
        written.layout.display(),
        written.tar.display(),
        written.digests.display()
    );
    if let Some(dir) = &args.istio {
        pin_istio(dir, &args.out, &image)?;
    }
    Ok(image.digests_text())
}

/// `OUT/istio/wasmplugin-*.yaml`: the manifests of `dir`, pinned to the
/// image just written.
fn pin_istio(dir: &std::path::Path, out: &std::path::Path, image: &Image) -> Result<(), String> {
    let into = out.join("istio");
    std::fs::create_dir_all(&into).map_err(|e| format!("cannot create {}: {e}", into.display()))?;
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wasmplugin-") && n.ends_with(".yaml"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format!("no wasmplugin-*.yaml in {}", dir.display()));
    }
    for name in names {
        let from = dir.join(&name);
        let text = std::fs::read_to_string(&from)
            .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let pinned = pin_wasmplugin(&text, image).ok_or(format!(
            "{}: no `sha256: {PLACEHOLDER_SHA256}` line to pin",
            from.display()
        ))?;
        let to = into.join(&name);
        std::fs::write(&to, pinned).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        eprintln!("    istio   {}", to.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cost-optimizer-image: {e}\n\n{}", usage());
            return ExitCode::FAILURE;
        }
    };
    match run(&args) {
        Ok(digests) => {
            print!("{digests}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cost-optimizer-image: {e}");
            ExitCode::FAILURE
        }
    }
}
