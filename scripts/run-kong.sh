#!/usr/bin/env bash
# The demo stack of `make run` with Kong's engine in place of Envoy: demo
# API (:8080, second provider :8082), cost-control (:8081, embedded SQLite
# store), and nginx + ngx_wasm_module (scripts/kong-host.sh) with the
# filter as the gateway on :10000 (ENVOY_PORT, as for `make run`, so the
# README's quick start works unchanged). Ctrl-C stops everything.
#
# The filter config is the one in kong/kong.yml (one source for both),
# checked first with cost-optimizer-validate: nginx -t does not run the
# filter's check, and a config the filter refuses would kill the workers
# while the master keeps the port. The shared-memory zone's size comes
# from kong/kong.conf. Files in target/run-kong/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/demo-stack.sh

demo_stack_check_ports run-kong "$ENVOY_PORT" "$DEMO_PORT" "$DEMO_B_PORT" "$CONTROL_PORT"

echo "==> Kong's engine (nginx + ngx_wasm_module + wasmtime; the first build takes 8-17 minutes)"
nginx="$(scripts/kong-host.sh | tail -n1)"
[[ -x "$nginx" ]] || { echo "run-kong: scripts/kong-host.sh gave no nginx binary ($nginx)" >&2; exit 1; }

run=target/run-kong
mkdir -p "$run"
echo "==> the filter config of kong/kong.yml"
target/debug/cost-optimizer-validate --kong-yml kong/kong.yml --print-config >"$run/filter.raw.json"
if [[ "$(wc -l <"$run/filter.raw.json")" -ne 1 ]]; then
  echo "run-kong: kong/kong.yml must hold exactly one cost_optimizer config" >&2
  exit 1
fi
# Callout targets are IP:port on Kong: follow the ports of this stack.
sed -e "s/\"127\.0\.0\.1:8080\"/\"127.0.0.1:$DEMO_PORT\"/g" \
    -e "s/\"127\.0\.0\.1:8081\"/\"127.0.0.1:$CONTROL_PORT\"/g" \
    -e "s/\"127\.0\.0\.1:8082\"/\"127.0.0.1:$DEMO_B_PORT\"/g" \
    "$run/filter.raw.json" >"$run/filter.json"
shm=$(awk '$1 == "nginx_wasm_shm_kv_cost_optimizer" { print $3 }' kong/kong.conf)
[[ -n "$shm" ]] || { echo "run-kong: kong/kong.conf sets no nginx_wasm_shm_kv_cost_optimizer" >&2; exit 1; }
KONG_PORT="$ENVOY_PORT" DEMO_PORT="$DEMO_PORT" DEMO_B_PORT="$DEMO_B_PORT" SHM_KV_SIZE="$shm" \
  scripts/render-kong.sh "$run/filter.json" "$run" >/dev/null
prefix=$(cd "$run" && pwd -P)
rm -f "$prefix/error.log"

demo_stack_start "$run"
"$nginx" -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/error.log" & nginx_pid=$!
pids+=("$nginx_pid")

# Ready when both workers configured the filter and the port answers; a
# refused config shows in the log at once (the workers exit, the master
# stays).
ready=
for _ in $(seq 1 900); do
  if ! kill -0 "$nginx_pid" 2>/dev/null; then
    echo "run-kong: nginx exited; its log ($prefix/error.log):" >&2
    tail -n 30 "$prefix/error.log" >&2 || true
    exit 1
  fi
  if grep -qE 'invalid configuration|exited with code' "$prefix/error.log" 2>/dev/null; then
    echo "run-kong: the filter refused its config:" >&2
    grep -E 'invalid configuration|exited with code' "$prefix/error.log" >&2
    exit 1
  fi
  if [[ "$(grep -c 'configured with' "$prefix/error.log" 2>/dev/null)" -ge 2 ]] \
    && curl -fs "http://127.0.0.1:$ENVOY_PORT/__host_ready" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
[[ -n "$ready" ]] || { echo "run-kong: nginx not ready after 90 s (log: $prefix/error.log)" >&2; exit 1; }

cat <<MSG

==> demo stack up on Kong's engine (nginx log: $prefix/error.log)
    curl -i localhost:$ENVOY_PORT/api/items/1 -H 'x-tenant-id: acme'
    demo API: http://127.0.0.1:$DEMO_PORT/__calls   cost-control: http://127.0.0.1:$CONTROL_PORT
    Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
