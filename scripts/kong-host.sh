#!/usr/bin/env bash
# Builds the Kong-engine test host: nginx 1.27.4 + Kong's ngx_wasm_module
# (commit 3bed2783) + the wasmtime 26.0.1 C API, linked statically as in
# Kong's own binaries, into a cache outside the work tree:
#
#   ${KONG_HOST_CACHE:-$HOME/.cache/cost-optimizer/kong-host}/
#     wasmtime-26.0.1-<key>/      include/ + lib/libwasmtime.a
#     nginx-1.27.4-wasm-3bed2783-<key>/sbin/nginx
#
# Each key hashes the pinned source checksums and every build flag, so a
# second run (or a fresh clone on the same machine) only checks the cache
# and takes seconds; a change of pins or flags builds beside the old one.
#
# Sources: $KONG_HOST_SOURCES if set, else ../shared/vendor/kong-host/
# next to the repository, else downloaded from the projects' GitHub
# archives. Checksums are always verified (see "Pins" below).
#
# Progress goes to stderr; the last (and only) line on stdout is the path
# of the nginx binary. Any problem stops it with a non-zero exit and a
# message that says what failed and where its log is.
#
#   KONG_HOST_CACHE     cache root (default above)
#   KONG_HOST_SOURCES   folder with the two source tarballs
#   KONG_HOST_JOBS      parallel build jobs (default 2)
set -euo pipefail

say() { echo "kong-host: $*" >&2; }
die() {
    echo "kong-host: ERROR: $*" >&2
    exit 1
}

REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
WRAPPER_SRC="$REPO_ROOT/scripts/kong-host/wasmtime-c-api"

# ---- Pins -------------------------------------------------------------------
# The tarballs' sha256 are those of ../shared/vendor/kong-host/README.md
# (`git archive` of the upstream commits). A download from GitHub has other
# bytes (another top folder name) but the same files: the tree checksum
# (sha256 over every file's sha256 and path, see tree_sha256) is checked
# for every source, whichever way it came.
NGINX_VERSION=1.27.4
NGINX_TARBALL=nginx-1.27.4.tar.gz
NGINX_SHA256=5a227a75b1fac451d593be600e479cdfa05a4f35f7ca7438d59dd7c3103548f6
NGINX_TREE_SHA256=40a520f85a4d3022a18d171df8a0e1b8dcfb0d5488f4d1965b838a111795bb98
# tag release-1.27.4 = commit ecb809305e54ed15be9f620d56b19ff4e4be7db5
NGINX_URL=https://github.com/nginx/nginx/archive/refs/tags/release-1.27.4.tar.gz

NGX_WASM_COMMIT=3bed27836bb402143c6cbde17994b1d11a1084bc
NGX_WASM_TARBALL=ngx_wasm_module-3bed2783.tar.gz
NGX_WASM_SHA256=15bf203c5bac5410f0d94e32f3e1c452ba9328250ed6d03e3aa4e74b439cdddf
NGX_WASM_TREE_SHA256=8d39ea646c02f7e72ca40045baebf44b33434b5018268579ad4be1ca5589d69b
NGX_WASM_URL=https://github.com/Kong/ngx_wasm_module/archive/${NGX_WASM_COMMIT}.tar.gz

WASMTIME_VERSION=26.0.1
# The C API's release defaults minus winch; the same list must be in
# scripts/kong-host/wasmtime-c-api/Cargo.toml (checked below). `wat` is the
# one the crate's own build script leaves out of conf.h, hence the headers
# are generated here with its cmake/install-headers.cmake.
WASMTIME_FEATURES="profiling wat cache parallel-compilation wasi logging coredump addr2line demangle threads gc async cranelift"

NGINX_CONFIGURE_ARGS=(--with-threads --with-http_ssl_module --with-http_v2_module --with-http_realip_module)
DEB_PACKAGES=(cmake libpcre3-dev libssl-dev zlib1g-dev)
# Bump when the way this script builds changes in a way the flags above
# do not show.
LAYOUT=1

JOBS=${KONG_HOST_JOBS:-2}
CACHE=${KONG_HOST_CACHE:-${HOME:?HOME is not set; set KONG_HOST_CACHE}/.cache/cost-optimizer/kong-host}
ARCH=$(uname -m)

# ---- Helpers ----------------------------------------------------------------
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# sha256 over "sha256  ./path" of every file of a tree, sorted by path:
# the same for a `git archive` and GitHub's archive of one commit.
tree_sha256() {
    (
        cd "$1"
        if [ -n "$(find . -type l -print -quit)" ]; then
            echo "symlink in $1" >&2
            exit 1
        fi
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
    )
}

# Run a build step with its output in a log; on failure show the log's end.
run_logged() {
    local log=$1
    shift
    if ! "$@" >>"$log" 2>&1; then
        echo "----- last 40 lines of $log -----" >&2
        tail -n 40 "$log" >&2
        die "step failed: $* (full log: $log)"
    fi
}

missing_packages() {
    local p
    for p in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

ensure_packages() {
    command -v dpkg-query >/dev/null || die "not a Debian-like system: install ${DEB_PACKAGES[*]} (or their equivalents) by hand"
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    [ -z "${missing// /}" ] && return 0
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "missing Debian packages: $missing; run as root: apt-get install -y $missing"
        sudo=(sudo)
    fi
    local log="$CACHE/apt.log"
    say "installing Debian packages: $missing(log: $log)"
    : >"$log"
    run_logged "$log" "${sudo[@]}" apt-get update
    # shellcheck disable=SC2086
    run_logged "$log" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
    missing=$(missing_packages | tr '\n' ' ')
    [ -z "${missing// /}" ] || die "still missing after apt-get install: $missing"
}

download() {
    local url=$1 out=$2
    say "downloading $url"
    if command -v curl >/dev/null; then
        curl -fsSL --retry 3 -o "$out.part" "$url" || die "download failed: $url"
    elif command -v wget >/dev/null; then
        wget -q -O "$out.part" "$url" || die "download failed: $url"
    else
        die "neither curl nor wget to download $url; or set KONG_HOST_SOURCES"
    fi
    mv "$out.part" "$out"
}

# Where the two tarballs come from, and whether their file checksums apply.
SOURCES=
SOURCES_KIND=
pick_sources() {
    if [ -n "${KONG_HOST_SOURCES:-}" ]; then
        SOURCES=$KONG_HOST_SOURCES
        SOURCES_KIND="KONG_HOST_SOURCES"
        if [ ! -f "$SOURCES/$NGINX_TARBALL" ] || [ ! -f "$SOURCES/$NGX_WASM_TARBALL" ]; then
            die "KONG_HOST_SOURCES=$SOURCES must hold $NGINX_TARBALL and $NGX_WASM_TARBALL"
        fi
    elif [ -f "$REPO_ROOT/../shared/vendor/kong-host/$NGINX_TARBALL" ] \
        && [ -f "$REPO_ROOT/../shared/vendor/kong-host/$NGX_WASM_TARBALL" ]; then
        SOURCES=$(cd "$REPO_ROOT/../shared/vendor/kong-host" && pwd -P)
        SOURCES_KIND="vendor"
    else
        SOURCES="$CACHE/downloads"
        SOURCES_KIND="download"
        mkdir -p "$SOURCES"
        [ -f "$SOURCES/$NGINX_TARBALL" ] || download "$NGINX_URL" "$SOURCES/$NGINX_TARBALL"
        [ -f "$SOURCES/$NGX_WASM_TARBALL" ] || download "$NGX_WASM_URL" "$SOURCES/$NGX_WASM_TARBALL"
    fi
    say "sources: $SOURCES ($SOURCES_KIND)"
}

# The pinned sha256 of a tarball (not for downloads: GitHub's archives
# have other bytes; their trees are checked when unpacked).
check_tarball() {
    local tarball=$1 file_sha=$2 got
    [ "$SOURCES_KIND" = download ] && return 0
    got=$(sha256_of "$tarball")
    [ "$got" = "$file_sha" ] || die "checksum mismatch for $tarball: sha256 $got, expected $file_sha"
}

# Unpack $1 into $2 (without its top folder) and check its tree checksum.
unpack_verified() {
    local tarball=$1 dest=$2 file_sha=$3 tree_sha=$4 got
    check_tarball "$tarball" "$file_sha"
    mkdir -p "$dest"
    tar -xzf "$tarball" -C "$dest" --strip-components=1 || die "cannot unpack $tarball"
    got=$(tree_sha256 "$dest") || die "cannot checksum $dest"
    [ "$got" = "$tree_sha" ] || die "tree checksum mismatch for $tarball: $got, expected $tree_sha (not the pinned source)"
}

# ---- Keys -------------------------------------------------------------------
for f in Cargo.toml Cargo.lock lib.rs; do
    [ -f "$WRAPPER_SRC/$f" ] || die "$WRAPPER_SRC/$f is missing"
done
for f in $WASMTIME_FEATURES; do
    grep -q "\"$f\"" "$WRAPPER_SRC/Cargo.toml" || die "feature $f is in this script but not in $WRAPPER_SRC/Cargo.toml"
done
grep -q "version = \"=$WASMTIME_VERSION\"" "$WRAPPER_SRC/Cargo.toml" \
    || die "$WRAPPER_SRC/Cargo.toml does not pin wasmtime-c-api-impl =$WASMTIME_VERSION"

WASMTIME_KEY=$({
    echo "layout=$LAYOUT arch=$ARCH wasmtime=$WASMTIME_VERSION features=$WASMTIME_FEATURES"
    cat "$WRAPPER_SRC/Cargo.toml" "$WRAPPER_SRC/Cargo.lock" "$WRAPPER_SRC/lib.rs"
} | sha256sum | cut -c1-16)
WASMTIME_DIR="$CACHE/wasmtime-$WASMTIME_VERSION-$WASMTIME_KEY"
HOST_KEY=$({
    echo "layout=$LAYOUT arch=$ARCH wasmtime=$WASMTIME_KEY"
    echo "nginx=$NGINX_VERSION $NGINX_TREE_SHA256 ngx_wasm=$NGX_WASM_COMMIT $NGX_WASM_TREE_SHA256"
    echo "configure=${NGINX_CONFIGURE_ARGS[*]} ld_opt=static-libwasmtime.a -lgcc_s ipc=0 cargo=0"
} | sha256sum | cut -c1-16)
HOST_DIR="$CACHE/nginx-$NGINX_VERSION-wasm-${NGX_WASM_COMMIT:0:8}-$HOST_KEY"
NGINX_BIN="$HOST_DIR/sbin/nginx"

mkdir -p "$CACHE" || die "cannot create the cache $CACHE"

# One build at a time per cache (test binaries may call this side by side).
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
    say "another kong-host build holds $CACHE/.lock; waiting"
    flock 9
fi

started=$(date +%s)

# ---- Cache hit --------------------------------------------------------------
check_binary() {
    "$NGINX_BIN" -V >/dev/null 2>&1
}

if [ -f "$HOST_DIR/.done" ] && [ -x "$NGINX_BIN" ]; then
    if ! check_binary; then
        # Most likely a shared library it links (pcre, ssl, zlib) is gone.
        ensure_packages
        check_binary || die "cached $NGINX_BIN does not run (\`$NGINX_BIN -V\` fails); remove $HOST_DIR to rebuild"
    fi
    say "cached: $HOST_DIR ($(($(date +%s) - started)) s)"
    echo "$NGINX_BIN"
    exit 0
fi

# ---- Cold build -------------------------------------------------------------
say "building into $CACHE (key $HOST_KEY); the first build takes 8 to 17 minutes on 2 cores (most of it wasmtime)"
command -v cargo >/dev/null || die "cargo is needed (Rust toolchain, see README)"
command -v cc >/dev/null || die "a C compiler (cc) is needed: apt-get install build-essential"
command -v make >/dev/null || die "make is needed: apt-get install build-essential"
command -v python3 >/dev/null || die "python3 is needed (reads cargo metadata)"
ensure_packages
# Sources first: a missing or wrong tarball fails now, not after wasmtime.
pick_sources
check_tarball "$SOURCES/$NGINX_TARBALL" "$NGINX_SHA256"
check_tarball "$SOURCES/$NGX_WASM_TARBALL" "$NGX_WASM_SHA256"

# -- wasmtime C API: static library + headers
if [ ! -f "$WASMTIME_DIR/.done" ]; then
    t0=$(date +%s)
    wtmp="$WASMTIME_DIR.partial"
    mkdir -p "$wtmp/crate" "$wtmp/prefix/lib"
    # Kept across failed runs: cargo resumes where it stopped.
    cp "$WRAPPER_SRC/Cargo.toml" "$WRAPPER_SRC/Cargo.lock" "$WRAPPER_SRC/lib.rs" "$wtmp/crate/"
    log="$wtmp/build.log"
    : >"$log"
    triple=$(rustc -vV | sed -n 's/^host: //p')
    [ -n "$triple" ] || die "cannot read the host triple from rustc -vV"
    say "building the wasmtime $WASMTIME_VERSION C API (cargo, $JOBS jobs; about 6.5 minutes cold; log: $log)"
    # Its own target dir and no inherited flags or target: this is a native
    # build of a crate that is not part of the project.
    run_logged "$log" env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET \
        CARGO_TARGET_DIR="$wtmp/target" \
        cargo build --release --locked -j "$JOBS" --target "$triple" \
        --manifest-path "$wtmp/crate/Cargo.toml"
    lib="$wtmp/target/$triple/release/libwasmtime.a"
    [ -f "$lib" ] || die "cargo built no $lib"
    cp "$lib" "$wtmp/prefix/lib/libwasmtime.a"

    crate_dir=$(cargo metadata --format-version 1 --locked --manifest-path "$wtmp/crate/Cargo.toml" 2>>"$log" \
        | python3 -c 'import json, os, sys
m = json.load(sys.stdin)
p = [p for p in m["packages"] if p["name"] == "wasmtime-c-api-impl" and p["version"] == sys.argv[1]]
print(os.path.dirname(p[0]["manifest_path"]) if p else "")' "$WASMTIME_VERSION") \
        || die "cargo metadata failed (log: $log)"
    [ -f "$crate_dir/cmake/install-headers.cmake" ] \
        || die "wasmtime-c-api-impl $WASMTIME_VERSION has no cmake/install-headers.cmake (found: '${crate_dir}')"
    cmake_args=(-DWASMTIME_DISABLE_ALL_FEATURES=ON "-DCMAKE_INSTALL_PREFIX=$wtmp/prefix")
    for f in $WASMTIME_FEATURES; do
        f=${f//-/_}
        cmake_args+=("-DWASMTIME_FEATURE_${f^^}=ON")
    done
    rm -rf "$wtmp/prefix/include"
    run_logged "$log" cmake "${cmake_args[@]}" -P "$crate_dir/cmake/install-headers.cmake"
    for f in $WASMTIME_FEATURES; do
        f=${f//-/_}
        grep -q "^#define WASMTIME_FEATURE_${f^^}" "$wtmp/prefix/include/wasmtime/conf.h" \
            || die "generated conf.h lacks WASMTIME_FEATURE_${f^^}"
    done
    # The target dir (gigabytes) is not needed once the library is out.
    rm -rf "$wtmp/target"
    touch "$wtmp/.done"
    rm -rf "$WASMTIME_DIR"
    mv "$wtmp" "$WASMTIME_DIR"
    say "wasmtime C API built in $(($(date +%s) - t0)) s: $WASMTIME_DIR"
else
    say "wasmtime C API cached: $WASMTIME_DIR"
fi

# -- nginx + ngx_wasm_module, linked with the static libwasmtime.a
t0=$(date +%s)
build="$HOST_DIR.build"
rm -rf "$build" "$HOST_DIR.partial"
mkdir -p "$build"
log="$build/build.log"
: >"$log"
unpack_verified "$SOURCES/$NGINX_TARBALL" "$build/nginx" "$NGINX_SHA256" "$NGINX_TREE_SHA256"
unpack_verified "$SOURCES/$NGX_WASM_TARBALL" "$build/ngx_wasm_module" "$NGX_WASM_SHA256" "$NGX_WASM_TREE_SHA256"
if [ "$SOURCES_KIND" = download ]; then say "sources verified (tree checksums)"; else say "sources verified (sha256 and tree checksums)"; fi

say "configuring and building nginx $NGINX_VERSION + ngx_wasm_module ${NGX_WASM_COMMIT:0:8} ($JOBS jobs; log: $log)"
(
    cd "$build/nginx"
    export NGX_IPC=0 NGX_WASM_CARGO=0 NGX_WASM_RUNTIME=wasmtime
    export NGX_WASM_RUNTIME_INC="$WASMTIME_DIR/prefix/include"
    export NGX_WASM_RUNTIME_LIB="$WASMTIME_DIR/prefix/lib"
    export NGX_WASM_RUNTIME_LD_OPT="$WASMTIME_DIR/prefix/lib/libwasmtime.a -lgcc_s"
    run_logged "$log" auto/configure --prefix="$HOST_DIR" "${NGINX_CONFIGURE_ARGS[@]}" \
        --add-module="$build/ngx_wasm_module"
    # The module tries a system-wide wasmtime first: make sure it took ours.
    grep -q "$WASMTIME_DIR/prefix/lib/libwasmtime.a" objs/Makefile \
        || die "configure did not pick $WASMTIME_DIR/prefix/lib/libwasmtime.a (see $log)"
    run_logged "$log" make -j "$JOBS"
)
[ -x "$build/nginx/objs/nginx" ] || die "make produced no objs/nginx (log: $log)"

# Install by hand (only the binary and mime.types are needed: tests pass
# -p and -c) into a partial dir, then rename: an interrupted run never
# leaves a half-built host that looks done.
part="$HOST_DIR.partial"
mkdir -p "$part/sbin" "$part/conf" "$part/logs"
cp "$build/nginx/objs/nginx" "$part/sbin/nginx"
cp "$build/nginx/conf/mime.types" "$part/conf/"
"$part/sbin/nginx" -V >"$part/BUILD-INFO" 2>&1 || die "the built nginx does not run: $(cat "$part/BUILD-INFO")"
grep -q ngx_wasm_module "$part/BUILD-INFO" || die "the built nginx lacks ngx_wasm_module: $(cat "$part/BUILD-INFO")"
{
    echo "wasmtime C API $WASMTIME_VERSION ($WASMTIME_FEATURES): $WASMTIME_DIR"
    echo "ngx_wasm_module $NGX_WASM_COMMIT"
    echo "sources: $SOURCES ($SOURCES_KIND)"
    echo "built $(date -u +%FT%TZ) with $(cc --version | head -n1), $(rustc --version)"
} >>"$part/BUILD-INFO"
touch "$part/.done"
rm -rf "$HOST_DIR"
mv "$part" "$HOST_DIR"
rm -rf "$build"
say "nginx built in $(($(date +%s) - t0)) s; total $(($(date +%s) - started)) s: $HOST_DIR"
echo "$NGINX_BIN"
