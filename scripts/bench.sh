#!/usr/bin/env bash
# `make bench`: builds what the bench runs (release demo API, the .wasm,
# the bench itself, Kong's engine through scripts/kong-host.sh), installs
# what it needs when missing (wrk, a font for the chart; both from Debian,
# idempotent), then runs it. The bench
# refuses to start when its ports (BENCH_PORT_BASE..+10, default
# 19000-19010) are taken. Knobs: see bench/README.md.
# Output: target/bench/report.md, report.png, report.json, logs.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "==> $*"; }

apt_updated=0
apt_install() {
  if [[ "$(id -u)" != 0 ]]; then
    echo "bench: $1 is missing and we are not root; install the Debian package '$2'" >&2
    exit 1
  fi
  if [[ $apt_updated == 0 ]]; then
    say "apt-get update"
    apt-get update -q
    apt_updated=1
  fi
  say "installing $2 from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2"
}

command -v wrk >/dev/null || apt_install wrk wrk
command -v taskset >/dev/null || apt_install taskset util-linux
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || apt_install "a font for the chart" fonts-dejavu-core

CARGO="${CARGO:-cargo}"
say "building the filter (wasm32-wasip1, release)"
"$CARGO" build -p cost-optimizer-wasm -p floor-filter --target wasm32-wasip1 --release
say "building the demo API, cost-control and the bench (release)"
"$CARGO" build --release -p demo-api -p bench -p cost-control --bins

# Kong's engine, for KA–KI and W (skipped when BENCH_ONLY names none of
# them; K alone is Envoy's): built once into a cache outside the work tree (8 to 17 minutes on
# 2 cores), a second afterwards.
if [[ -z "${BENCH_ONLY:-}" ]] || grep -Eqi '(^|,)[[:space:]]*(k[a-z]+|w)[[:space:]]*(,|$)' <<<"$BENCH_ONLY"; then
  say "Kong's engine (scripts/kong-host.sh)"
  KONG_NGINX_BIN="${KONG_NGINX_BIN:-$(scripts/kong-host.sh)}"
  export KONG_NGINX_BIN
  echo "    $KONG_NGINX_BIN"
fi

say "cost-control spend ingest (5 s, batches of 500, 8 clients)"
BENCH_SPEND_RESULT="$(target/release/ingest-bench 5 8 20 2>/dev/null | grep events_per_sec= | tail -n1 || true)"
export BENCH_SPEND_RESULT
echo "    ${BENCH_SPEND_RESULT:-no result}"

# The bench counts what BENCH_ONLY leaves in (every configuration by default).
say "running the bench ($(target/release/bench --estimate))"
exec target/release/bench "$@"
