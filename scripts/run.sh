#!/usr/bin/env bash
# The demo stack in the foreground: demo API (:8080, second provider :8082),
# cost-control (:8081, embedded SQLite store), Envoy with the filter
# (:10000, admin :9901). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/demo-stack.sh

demo_stack_check_ports run "$ENVOY_PORT" "$ADMIN_PORT" "$DEMO_PORT" "$DEMO_B_PORT" "$CONTROL_PORT"
mkdir -p target/run
demo_stack_start target/run
scripts/render-envoy.sh > target/run/envoy.yaml
.venv/bin/envoy -c target/run/envoy.yaml --concurrency 2 --disable-hot-restart -l info \
  --log-path target/run/envoy.log & pids+=($!)

for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
cat <<MSG

==> demo stack up (Envoy log: target/run/envoy.log)
    curl -i localhost:$ENVOY_PORT/api/items/1 -H 'x-tenant-id: acme'
    Envoy admin: http://127.0.0.1:$ADMIN_PORT   demo API: http://127.0.0.1:$DEMO_PORT/__calls
    Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
