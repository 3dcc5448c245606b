#!/usr/bin/env bash
# The whole test suite (called by `make test` after lint and build).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -x scripts/ensure-postgres.sh ]]; then
  echo "==> PostgreSQL for cost-control's store tests"
  COST_CONTROL_PG_URL="$(scripts/ensure-postgres.sh | tail -n1)"
  export COST_CONTROL_PG_URL
fi

echo "==> Kong's engine (nginx + ngx_wasm_module + wasmtime) for the tests on Kong"
# Built once into a cache outside the work tree (8-17 minutes cold on two
# cores, seconds after); the tests take nginx from here.
KONG_NGINX_BIN="$(scripts/kong-host.sh | tail -n1)"
export KONG_NGINX_BIN

echo "==> fuzz smoke (every fuzz target, 20,000 inputs or 3 s each; make fuzz runs them long)"
# A debug build (its dependencies are those cargo test builds next) and a
# fixed seed, so a failure here repeats; a panic or an input over the
# allocation bound fails the suite, the input saved in target/fuzz-crashes/.
# The slowest target (whole exchanges through the pipeline) reaches about
# 3,000 inputs in 3 s.
cargo run -q -p optimizer-fuzz --bin fuzz -- \
  --inputs "${FUZZ_SMOKE_INPUTS:-20000}" --seconds "${FUZZ_SMOKE_SECONDS:-3}"

echo "==> Chromium and chromedriver for the dashboard's browser test"
# Debian's chromium and chromium-driver, installed once (about a minute),
# a check after; the test reads the two paths the script prints last
# (CHROMIUM_BIN=..., CHROMEDRIVER_BIN=...). A failed install stops here.
CHROMIUM_ENV="$(scripts/ensure-chromium.sh | tail -n2)"
export "$(sed -n 1p <<<"$CHROMIUM_ENV")" "$(sed -n 2p <<<"$CHROMIUM_ENV")"

echo "==> cargo test (unit, service and end-to-end tests)"
# End-to-end tests each start a gateway with two workers (every behaviour
# test once on Envoy and once on Kong's engine) and the demo API; two at a
# time keeps a 2-core machine from starving them.
cargo test --workspace --no-fail-fast -- --test-threads="${E2E_THREADS:-2}"
