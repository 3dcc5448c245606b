#!/usr/bin/env bash
# `make fuzz`: every fuzz target of fuzz/ (or those in FUZZ_TARGETS), each
# until it has run FUZZ_INPUTS inputs or FUZZ_SECONDS seconds passed.
#
# FUZZ_ENGINE=auto (default): coverage-guided libFuzzer when it builds here
#   (stable rustc's SanitizerCoverage pass + libfuzzer-sys, which needs a
#   C++ compiler), else the stable driver.
# FUZZ_ENGINE=libfuzzer | driver: that one (libfuzzer fails if it cannot
#   build).
#
# A crash fails the run. The driver saves crashing inputs under
# target/fuzz-crashes/, libFuzzer under target/libfuzzer-crashes/<target>/;
# libFuzzer's growing corpus is kept in target/libfuzzer-corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE="${FUZZ_ENGINE:-auto}"
FUZZ_SECONDS="${FUZZ_SECONDS:-600}"
FUZZ_INPUTS="${FUZZ_INPUTS:-10000000}"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-}"

# SanitizerCoverage as cargo-fuzz sets it up, with flags stable rustc
# accepts. --target keeps them off build scripts and proc macros.
HOST="$(rustc -vV | sed -n 's/^host: //p')"
SANCOV="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
LF_BIN="target/libfuzzer/$HOST/release/libfuzzer"

build_libfuzzer() {
  command -v c++ >/dev/null 2>&1 || { echo "==> no C++ compiler: libFuzzer cannot be built"; return 1; }
  echo "==> building the libFuzzer binary (stable rustc, SanitizerCoverage)"
  RUSTFLAGS="$SANCOV" cargo build --release \
    --manifest-path fuzz/libfuzzer/Cargo.toml \
    --target "$HOST" --target-dir target/libfuzzer
}

run_driver() {
  echo "==> stable driver: ${FUZZ_INPUTS} inputs or ${FUZZ_SECONDS} s per target"
  cargo run --profile fuzz -q -p optimizer-fuzz --bin fuzz -- \
    --inputs "$FUZZ_INPUTS" --seconds "$FUZZ_SECONDS" "${TARGETS[@]}"
}

run_libfuzzer() {
  local names=("${TARGETS[@]}")
  if [[ ${#names[@]} -eq 0 ]]; then
    mapfile -t names < <(cargo run --profile fuzz -q -p optimizer-fuzz --bin fuzz -- --list)
  fi
  local failed=0
  for t in "${names[@]}"; do
    local corpus="target/libfuzzer-corpus/$t" crashes="target/libfuzzer-crashes/$t"
    local log="target/libfuzzer-logs/$t.log"
    mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
    # Seeds are written into the corpus by the binary itself (the same
    # seeds as the driver's). -rss_limit_mb bounds the whole process;
    # the per-input allocation bound is the binary's own (alloc_bound).
    if FUZZ_TARGET="$t" FUZZ_SEED_DIR="$corpus" "$LF_BIN" "$corpus" \
        -runs="$FUZZ_INPUTS" -max_total_time="$FUZZ_SECONDS" \
        -max_len=4096 -rss_limit_mb=4096 -timeout=10 \
        -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1; then
      local runs cov
      runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
      cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n1)"
      printf '%-16s ok    %11s inputs in %s s (%s, corpus %s files)\n' \
        "$t" "${runs:-?}" "$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")" \
        "${cov:-cov: ?}" "$(find "$corpus" -type f | wc -l)"
    else
      failed=1
      echo "$t FAIL (log: $log)"
      grep -E "panicked|ERROR: libFuzzer|SUMMARY|Test unit written" "$log" | head -n 8 | sed 's/^/    /'
    fi
  done
  return "$failed"
}

case "$ENGINE" in
  driver) run_driver ;;
  libfuzzer) build_libfuzzer && run_libfuzzer ;;
  auto)
    if build_libfuzzer; then
      run_libfuzzer
    else
      echo "==> libFuzzer unavailable here; falling back to the stable driver"
      run_driver
    fi
    ;;
  *) echo "FUZZ_ENGINE must be auto, libfuzzer or driver (not $ENGINE)" >&2; exit 2 ;;
esac
