#!/usr/bin/env bash
# `make soak`: builds what the soak runs (the .wasm, the demo API,
# cost-control and the soak itself, in release), then runs it:
# SOAK_MINUTES (10) of mixed traffic at half the stack's measured
# capacity, with upstream faults and cost-control killed and restarted
# twice. Not part of `make test`. The soak refuses to start when its ports
# (SOAK_PORT_BASE..+5, default 19200-19205) are taken. Knobs: see
# bench/README.md ("Soak"). Output: target/soak/report.md, memory.svg,
# samples.json, and every process's log.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "==> $*"; }

CARGO="${CARGO:-cargo}"
say "building the filter (wasm32-wasip1, release)"
"$CARGO" build -p cost-optimizer-wasm --target wasm32-wasip1 --release
say "building the demo API, cost-control and the soak (release)"
"$CARGO" build --release -p demo-api -p cost-control -p bench --bin demo-api --bin cost-control --bin soak

say "soaking for ${SOAK_MINUTES:-10} minutes (and about a minute to measure, settle and report)"
exec target/release/soak "$@"
