#!/usr/bin/env bash
# The demo stack in the foreground: demo API (:8080, second provider :8082),
# cost-control (:8081, embedded SQLite store), Envoy with the filter
# (:10000, admin :9901). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

for port in "$ENVOY_PORT" "$ADMIN_PORT" "$DEMO_PORT" "$DEMO_B_PORT" "$CONTROL_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use; stop what holds it or move the stack (e.g. ENVOY_PORT=11000 make run)" >&2
    exit 1
  fi
done

mkdir -p target/run
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

target/debug/demo-api --provider primary --port "$DEMO_PORT" & pids+=($!)
target/debug/demo-api --provider secondary --port "$DEMO_B_PORT" & pids+=($!)
if [[ -x target/debug/cost-control ]] && target/debug/cost-control --help >/dev/null 2>&1; then
  target/debug/cost-control serve --listen "127.0.0.1:$CONTROL_PORT" --store sqlite:target/run/cost-control.db --dev-tokens & pids+=($!)
fi
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
