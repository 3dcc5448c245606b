# Thin wrapper over scripts/; knobs can be overridden: make run ENVOY_PORT=11000
SHELL := /bin/bash
CARGO ?= cargo
WASM := target/wasm32-wasip1/release/cost_optimizer.wasm
export ENVOY_PORT ?= 10000
export ADMIN_PORT ?= 9901
export DEMO_PORT ?= 8080
export DEMO_B_PORT ?= 8082
export CONTROL_PORT ?= 8081
IMAGE_DIR ?= target/image
IMAGE_REF ?=

.PHONY: all install build wasm image run run-kong demo test lint bench instructions soak control-load fuzz clean kong-host

all: build

install:
	@scripts/install.sh

wasm: install
	$(CARGO) build -p cost-optimizer-wasm --target wasm32-wasip1 --release
	@ls -l $(WASM) | awk '{print "==> " $$9 ": " $$5 " bytes"}'

# The filter as an OCI image for Istio's WasmPlugin (url: oci://...), written
# by filter/image without Docker: $(IMAGE_DIR)/oci (an OCI image layout),
# $(IMAGE_DIR)/cost-optimizer-oci.tar (the same, for skopeo copy
# oci-archive:...) and $(IMAGE_DIR)/digests.txt; the digests also go to stdout.
# Same .wasm, same digests. make image IMAGE_REF=cost-optimizer:dev
image: wasm
	$(CARGO) run -q -p cost-optimizer-image -- --wasm $(WASM) --out $(IMAGE_DIR) --istio istio $(if $(IMAGE_REF),--ref $(IMAGE_REF))

build: wasm
	$(CARGO) build -p demo-api -p cost-control -p cost-optimizer-validate --bins

run: build
	@scripts/run.sh

# The same demo stack with Kong's engine (nginx + ngx_wasm_module, built by
# scripts/kong-host.sh) as the gateway, on the same ports, configured from
# kong/kong.yml and kong/kong.conf.
run-kong: build
	@scripts/run-kong.sh

# A fixed workload through the optimizer and one table of what it saved:
# on the stack `make run` started, else on one of its own (free ports).
# make demo DEMO_ARGS="--own-stack --seed 7"
demo: build
	@scripts/demo.sh $(DEMO_ARGS)

lint: install
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p cost-optimizer-wasm --target wasm32-wasip1 -- -D warnings

# Every test: lints, native unit tests, cost-control against both stores,
# and the end-to-end suite on the real Envoy.
test: lint build
	@scripts/test.sh

bench: install
	@scripts/bench.sh

# Instructions per request under callgrind, of the configurations the
# last `make bench` wrote (scripts/instructions.sh says which and how).
instructions: install
	@scripts/instructions.sh $(CONFIGS)

# Every fuzz target (fuzz/), each until FUZZ_INPUTS inputs or FUZZ_SECONDS
# seconds: coverage-guided libFuzzer when it builds here (stable rustc, a
# C++ compiler), else the stable driver (FUZZ_ENGINE=auto|libfuzzer|driver).
# make fuzz FUZZ_TARGETS="cache_entry limiter" FUZZ_SECONDS=60
FUZZ_ENGINE ?= auto
FUZZ_SECONDS ?= 600
FUZZ_INPUTS ?= 10000000
FUZZ_TARGETS ?=
fuzz:
	@FUZZ_ENGINE="$(FUZZ_ENGINE)" FUZZ_SECONDS="$(FUZZ_SECONDS)" FUZZ_INPUTS="$(FUZZ_INPUTS)" \
	  FUZZ_TARGETS="$(FUZZ_TARGETS)" scripts/fuzz.sh

# The stack for SOAK_MINUTES under mixed traffic at half its capacity,
# upstream faults and cost-control restarts; fails on an unexplained
# answer, memory growth, a ledger off by a cent or a worker restart.
# Not part of `make test`. make soak SOAK_MINUTES=60
export SOAK_MINUTES ?= 10
soak: install
	@scripts/soak.sh

# cost-control alone (release, SQLite in a temp dir) under
# CONTROL_LOAD_CONNECTIONS keep-alive connections of spend and allowance
# calls for CONTROL_LOAD_SECONDS; latency per call kind, then the ledger
# against what was acknowledged. Fails on any error. Not part of `make test`.
# PostgreSQL: make control-load CONTROL_LOAD_ARGS="--store postgres://..."
CONTROL_LOAD_SECONDS ?= 60
CONTROL_LOAD_CONNECTIONS ?= 1000
CONTROL_LOAD_ARGS ?=
control-load:
	$(CARGO) build --release -p cost-control -p bench --bin cost-control --bin control_load
	target/release/control_load --seconds $(CONTROL_LOAD_SECONDS) \
	  --connections $(CONTROL_LOAD_CONNECTIONS) $(CONTROL_LOAD_ARGS)

# Kong's wasm engine (nginx + ngx_wasm_module + wasmtime) for tests, built
# into a cache outside the work tree (KONG_HOST_CACHE); prints nginx's path.
kong-host:
	@scripts/kong-host.sh

clean:
	$(CARGO) clean
