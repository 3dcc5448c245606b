#!/usr/bin/env bash
# `make instructions`: instructions per request, counted by valgrind's
# callgrind, of the gateway under the configurations `make bench` wrote
# (target/bench/envoy-X.yaml, target/bench/kong-KX/nginx.conf), one
# request at a time over one kept-alive connection.
#
# Why beside `make bench`: CPU time per request on a shared 2-core machine
# moves by 5-15 % between runs, more than most single changes to the
# filter; an instruction count is the same to about 0.3 % run after run (issue
# 18), so a change's effect shows in one run. It counts the gateway's
# user-space instructions only (not the kernel, not cache misses), so it
# complements the bench's CPU figures, it does not replace them.
#
# Usage: scripts/instructions.sh [CONFIG...]   (default: A C T D TD F I KC KD KI)
#   N=1000          measured requests per configuration (after 300 warm-up)
#   WASM=path       the filter to load instead of the one the config names
#                   (T and TD keep the floor filter)
#   TOP=25          functions listed per configuration (0: none)
# Needs: valgrind (Debian package, installed here when missing and root),
# python3, and a `make bench` run that wrote the configurations, e.g.
#   BENCH_ONLY=A,C,T,D,TD,F,I,KC,KD,KI BENCH_ROUNDS=1 make bench
# Envoy under valgrind takes about 2 minutes per configuration (mostly its
# start), Kong's engine about 40 s. Output: target/instructions/report.md.
# J (and a hand-made KJ) report to cost-control: one is started on the
# bench's port unless one answers there, and J's calls to it get 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${N:-1000}
TOP=${TOP:-25}
OUT=$ROOT/target/instructions
BENCH=$ROOT/target/bench
mkdir -p "$OUT"

if ! command -v valgrind >/dev/null; then
  if [[ "$(id -u)" == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind
  else
    echo "instructions: valgrind is missing; install the Debian package 'valgrind'" >&2
    exit 1
  fi
fi
ENVOY=$(python3 - <<'PY'
import glob
hits = glob.glob(".venv/lib/python3*/site-packages/envoy/_bin/envoy")
print(hits[0] if hits else "")
PY
)
NGINX=$(ls -d "$HOME"/.cache/cost-optimizer/kong-host/*/sbin/nginx 2>/dev/null | head -1 || true)
NGINX=${KONG_NGINX_BIN:-$NGINX}

configs=("$@")
[[ ${#configs[@]} -gt 0 ]] || configs=(A C T D TD F I KC KD KI)

# The demo API the configurations proxy to (the bench's upstream port).
demo_port() {
  grep -o 'port_value: [0-9]*' "$BENCH/envoy-A.yaml" | sed -n 3p | grep -o '[0-9]*$'
}
DEMO_PORT=$(demo_port)
if ! curl -s -o /dev/null "http://127.0.0.1:$DEMO_PORT/__calls"; then
  "$ROOT/target/release/demo-api" --port "$DEMO_PORT" >"$OUT/demo-api.log" 2>&1 &
  DEMO_PID=$!
  trap 'kill $DEMO_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$DEMO_PORT/__calls" && break; sleep 0.1; done
fi

# J reports to cost-control and spends leases from it: start one on the
# bench's port (fresh SQLite store, development tokens, as `make bench`
# does) unless one answers there already.
start_control() {
  # The bench's ports: cost-control's is the demo API's + 1 (bench/src/yaml.rs).
  local port=$((DEMO_PORT + 1))
  curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && return 0
  rm -f "$OUT"/cc.db*
  "$ROOT/target/release/cost-control" serve --listen "127.0.0.1:$port" \
    --store "sqlite:$OUT/cc.db" --dev-tokens >"$OUT/cost-control.log" 2>&1 &
  CONTROL_PID=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && return 0; sleep 0.1; done
  echo "instructions: cost-control did not start (see $OUT/cost-control.log)" >&2
  return 1
}
CONTROL_PID=
for c in "${configs[@]}"; do
  if [[ $c == J* || $c == KJ* ]]; then start_control; break; fi
done
trap 'kill ${DEMO_PID:-} ${CONTROL_PID:-} 2>/dev/null || true' EXIT

# A cache hit is measured on one URL stored during warm-up; every other
# configuration on a new URL per request (the bench's miss paths).
url_mode() {
  case "$1" in D | TD | F | KD) echo same ;; *) echo unique ;; esac
}

run_one() {
  local name=$1 dir=$OUT/$1 port vpid
  rm -rf "$dir"
  mkdir -p "$dir"
  if [[ $name == K* ]]; then
    [[ -x $NGINX ]] || { echo "instructions: Kong's engine not built (scripts/kong-host.sh)" >&2; return 1; }
    [[ -f $BENCH/kong-$name/nginx.conf ]] || { echo "instructions: no $BENCH/kong-$name/nginx.conf: run make bench with $name first" >&2; return 1; }
    # One process (the count follows one pid); wasmtime writes a perf map
    # of the module's functions, which names them in the report.
    python3 - "$BENCH/kong-$name" "$dir" "${WASM:-}" <<'PY'
import re, sys
src, dst, wasm = sys.argv[1:]
t = open(src + "/nginx.conf").read().replace(src, dst)
t = t.replace("master_process on;", "master_process off;")
t = re.sub(r'cache_config "[^"]*";', "flag profiler perfmap;", t)
if wasm:
    t = re.sub(r'module cost_optimizer "[^"]*"', 'module cost_optimizer "%s"' % wasm, t)
open(dst + "/nginx.conf", "w").write(t)
PY
    port=$(grep -o 'listen 127.0.0.1:[0-9]*' "$dir/nginx.conf" | head -1 | grep -o '[0-9]*$')
    valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file="$dir/cg.out" \
      "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/valgrind.log" 2>&1 &
  else
    [[ -x $ENVOY ]] || { echo "instructions: Envoy not installed (make install)" >&2; return 1; }
    [[ -f $BENCH/envoy-$name.yaml ]] || { echo "instructions: no $BENCH/envoy-$name.yaml: run make bench with $name first" >&2; return 1; }
    if [[ -n ${WASM:-} && $name != T && $name != TD ]]; then
      # Every module but the floor filter's is the optimizer, whatever
      # file the bench's run gave it (OPTIMIZER_WASM names another).
      sed -e "/floor_filter.wasm/!s|filename: \"[^\"]*\"|filename: \"$WASM\"|" "$BENCH/envoy-$name.yaml" >"$dir/envoy.yaml"
    else
      cp "$BENCH/envoy-$name.yaml" "$dir/envoy.yaml"
    fi
    # Under valgrind a lease call can outlast the default 2 s during
    # start-up, and J's requests are refused (503) once the outage credit
    # is spent: give cost-control's calls 30 s, as KJ's config does.
    sed -i 's|"accounting":{|"accounting":{"timeout_ms":30000,|' "$dir/envoy.yaml"
    port=$(grep -o 'port_value: [0-9]*' "$dir/envoy.yaml" | sed -n 2p | grep -o '[0-9]*$')
    valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file="$dir/cg.out" \
      "$ENVOY" -c "$dir/envoy.yaml" --concurrency 1 --base-id 79 >"$dir/valgrind.log" 2>&1 &
  fi
  vpid=$!
  python3 - "$port" "$vpid" "$N" "$(url_mode "$name")" "$name" <<'PY'
import http.client, subprocess, sys, time
port, vpid, n, mode, name = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
q = "size=1024&cache-control=max-age%3D3600"
def path(i, prefix):
    return "/api/items/1?" + q if mode == "same" else "/api/items/%s%d?%s" % (prefix, i, q)
deadline = time.time() + 900
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", path(0, "ready"), headers={"x-tenant-id": "bench"})
        r = c.getresponse(); r.read()
        if r.status == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("%s: the gateway did not answer 200 within 15 minutes" % name)
    time.sleep(0.5)
def go(i, prefix):
    c.request("GET", path(i, prefix), headers={"x-tenant-id": "bench"})
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit("%s: answer %d, not 200" % (name, r.status))
for i in range(300):
    go(i, "w" + name)
subprocess.run(["callgrind_control", "-z", vpid], check=True, capture_output=True)
for i in range(n):
    go(i, "m" + name)
subprocess.run(["callgrind_control", "-d", vpid], check=True, capture_output=True)
PY
  kill "$vpid" 2>/dev/null || true
  wait "$vpid" 2>/dev/null || true
  cp "/tmp/perf-$vpid.map" "$dir/perf.map" 2>/dev/null || true
}

summary() {
  python3 - "$OUT" "$N" "$TOP" "$@" <<'PY'
import bisect, collections, glob, os, re, sys
out, n, top, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def parse(path):
    ids = {"fn": {}, "ob": {}}
    by_fn = collections.Counter(); by_ob = collections.Counter()
    fn = ob = None; after_call = False
    def name(kind, v):
        m = re.match(r"\((\d+)\)(?: (.*))?", v)
        if not m:
            return v
        i, s = m.groups()
        if s is not None:
            ids[kind][i] = s
        return ids[kind].get(i, "?")
    for line in open(path):
        line = line.rstrip("\n")
        if not line:
            continue
        if line.startswith("fn="): fn = name("fn", line[3:]); continue
        if line.startswith("ob="): ob = name("ob", line[3:]); continue
        if line.startswith("cfn="): name("fn", line[4:]); continue
        if line.startswith("cob="): name("ob", line[4:]); continue
        if line.startswith("calls="): after_call = True; continue
        if line[0] in "+-*0123456789":
            parts = line.split()
            if after_call:
                after_call = False; continue
            if len(parts) >= 2:
                by_fn[(ob, fn)] += int(parts[1]); by_ob[ob] += int(parts[1])
    return by_fn, by_ob
def module_names(d, by_fn):
    m = os.path.join(d, "perf.map")
    if not os.path.exists(m):
        return by_fn
    syms = sorted((int(a, 16), int(s, 16), nm) for a, s, nm in (l.rstrip("\n").split(" ", 2) for l in open(m)))
    starts = [s[0] for s in syms]; res = collections.Counter()
    for (o, f), c in by_fn.items():
        if f.startswith("0x"):
            a = int(f, 16); i = bisect.bisect_right(starts, a) - 1
            if i >= 0 and syms[i][0] <= a < syms[i][0] + syms[i][1]:
                res[(o, "[wasm] " + re.sub(r"::h[0-9a-f]{16}$", "", syms[i][2]))] += c; continue
        res[(o, f)] += c
    return res
rows = []; detail = []
for nm in names:
    d = os.path.join(out, nm); dumps = sorted(glob.glob(d + "/cg.out.*"))
    if not dumps:
        rows.append("| %s | no count (see %s/valgrind.log) | | |" % (nm, d)); continue
    by_fn, by_ob = parse(dumps[0])
    by_fn = module_names(d, by_fn)
    total = sum(by_ob.values())
    jit = sum(c for (o, f), c in by_fn.items() if o == "???")
    module = sum(c for (o, f), c in by_fn.items() if f.startswith("[wasm] "))
    rows.append("| %s | %d | %d | %s |" % (nm, total // n, jit // n, module // n if module else "–"))
    if top:
        detail.append("\n### %s: the %d largest functions (instructions per request)\n" % (nm, top))
        for (o, f), c in by_fn.most_common(top):
            detail.append("- %d %s" % (c // n, f[:120]))
report = ["# Instructions per request (callgrind)", "",
          "%d requests per configuration after 300 of warm-up, one at a time on one connection." % n,
          "JIT: instructions outside any mapped object (the VM's compiled code: the filter, and on Envoy V8's own code stubs); module: those a wasmtime perf map names as the filter's functions (Kong's engine only).", "",
          "| configuration | instructions per request | JIT | module |", "|---|---|---|---|"] + rows + detail
open(os.path.join(out, "report.md"), "w").write("\n".join(report) + "\n")
print("\n".join(report[:len(rows) + 7]))
PY
}

for c in "${configs[@]}"; do
  echo "==> $c" >&2
  run_one "$c"
done
summary "${configs[@]}"
echo "==> $OUT/report.md" >&2
