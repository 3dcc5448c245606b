#!/usr/bin/env bash
# A fixed workload through the optimizer, then one table of what it saved
# per strategy (called by `make demo`, after `make build`). Uses the stack
# on ENVOY_PORT/ADMIN_PORT/DEMO_PORT/CONTROL_PORT when one is running
# (`make run`), else starts its own on free ports and stops it at the end.
# Arguments go to the demo binary: --own-stack, --seed N.
# DEMO_PROFILE=release builds the driver with the release profile (full
# LTO: a slow build, and the driver is not the bottleneck).
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${DEMO_PROFILE:-debug}"
case "$profile" in
  debug) "${CARGO:-cargo}" build -q -p e2e --bin demo ;;
  release) "${CARGO:-cargo}" build -q -p e2e --bin demo --release ;;
  *) echo "DEMO_PROFILE must be debug or release, not $profile" >&2; exit 2 ;;
esac
exec "target/$profile/demo" "$@"
