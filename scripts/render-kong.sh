#!/usr/bin/env bash
# Writes RUN_DIR/nginx.conf: kong/nginx.conf.template rendered for the
# Kong-engine test host, with the filter config read from FILE (JSON; it
# needs "host": "kong" and callout targets as IP:port) and ports from the
# environment. Prints the command that starts nginx on it (in the
# foreground; Ctrl-C stops it):
#
#   scripts/render-kong.sh FILE RUN_DIR
#   "$(scripts/kong-host.sh)" -p RUN_DIR/ -c RUN_DIR/nginx.conf -e RUN_DIR/error.log
#
# KONG_PORT (10000), DEMO_PORT (8080), DEMO_B_PORT (8082), SHM_KV_SIZE (64m),
# OPTIMIZER_WASM (target/wasm32-wasip1/release/cost_optimizer.wasm).
# wasmtime's compilation cache goes to RUN_DIR/wasmtime-cache.
# tests/src/kong.rs renders the same template for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || {
    echo "usage: $0 FILTER_CONFIG.json RUN_DIR" >&2
    exit 2
}
config_file=$1
prefix=$(mkdir -p "$2" && cd "$2" && pwd -P)
wasm=${OPTIMIZER_WASM:-$PWD/target/wasm32-wasip1/release/cost_optimizer.wasm}
[ -f "$wasm" ] || { echo "render-kong: $wasm is missing: run make build" >&2; exit 1; }
[ -r "$config_file" ] || { echo "render-kong: cannot read $config_file" >&2; exit 1; }
grep -Eq '"host"[[:space:]]*:[[:space:]]*"kong"' "$config_file" \
    || { echo "render-kong: $config_file lacks \"host\": \"kong\"" >&2; exit 1; }

# JSON allows no raw newline inside a string, so joining lines is safe;
# then escape for a single-quoted nginx string.
config=$(tr -d '\n\r' <"$config_file" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")
if [ "${#config}" -ge 4000 ]; then
    echo "render-kong: the filter config is ${#config} bytes; nginx refuses a parameter of 4096 or more" >&2
    exit 1
fi

# A literal replacement: bash 5.2 would read & in it as the match.
shopt -u patsub_replacement 2>/dev/null || true
cache_config="$prefix/wasmtime-cache.toml"
# nginx's workers drop root for `nobody` and write the cache themselves.
mkdir -p "$prefix/wasmtime-cache" && chmod 1777 "$prefix/wasmtime-cache"
printf '[cache]\nenabled = true\ndirectory = "%s"\n' "$prefix/wasmtime-cache" >"$cache_config"
out=$(<kong/nginx.conf.template)
out=${out//@PREFIX@/$prefix}
out=${out//@WASM@/$wasm}
out=${out//@SHM_KV_SIZE@/${SHM_KV_SIZE:-64m}}
out=${out//@WASMTIME_CACHE_CONFIG@/$cache_config}
out=${out//@LISTEN_PORT@/${KONG_PORT:-10000}}
out=${out//@DEMO_PORT@/${DEMO_PORT:-8080}}
out=${out//@DEMO_B_PORT@/${DEMO_B_PORT:-8082}}
out=${out//@FILTER_CONFIG@/$config}
if grep -Eo '@[A-Z_]+@' <<<"$out" | grep -v '^$' >&2; then
    echo "render-kong: placeholders left unreplaced (above)" >&2
    exit 1
fi
printf '%s\n' "$out" >"$prefix/nginx.conf"
echo "render-kong: wrote $prefix/nginx.conf; start it with:" >&2
echo "\"\$(scripts/kong-host.sh)\" -p $prefix/ -c $prefix/nginx.conf -e $prefix/error.log"
