# Sourced by run.sh (Envoy) and run-kong.sh (Kong's engine): what their
# demo stacks share. Ports from the environment (DEMO_PORT, DEMO_B_PORT,
# CONTROL_PORT); after demo_stack_start, add the gateway's pid to `pids`.

# demo_stack_check_ports TARGET PORT...: stop when a port is taken.
demo_stack_check_ports() {
  local target=$1 port
  shift
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is already in use; stop what holds it or move the stack (e.g. ENVOY_PORT=11000 make $target)" >&2
      exit 1
    fi
  done
}

# Stops everything in `pids` (nginx's master stops its workers on TERM).
demo_stack_stop() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}

# demo_stack_start DIR: the demo API (provider primary on DEMO_PORT,
# secondary on DEMO_B_PORT) and cost-control on CONTROL_PORT with its
# SQLite store in DIR, all stopped on Ctrl-C, TERM or exit.
demo_stack_start() {
  pids=()
  trap demo_stack_stop INT TERM EXIT
  target/debug/demo-api --provider primary --port "$DEMO_PORT" & pids+=($!)
  target/debug/demo-api --provider secondary --port "$DEMO_B_PORT" & pids+=($!)
  if [[ -x target/debug/cost-control ]] && target/debug/cost-control --help >/dev/null 2>&1; then
    target/debug/cost-control serve --listen "127.0.0.1:$CONTROL_PORT" --store "sqlite:$1/cost-control.db" --dev-tokens & pids+=($!)
  fi
}
