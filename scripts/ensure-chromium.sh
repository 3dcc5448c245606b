#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver (chromedriver) are
# installed, for the dashboard's browser test (tests/tests/dashboard.rs).
# Idempotent and quick when both are present: installs Debian's `chromium`
# and `chromium-driver` packages only when a binary is missing. Prints the
# two paths as the last two lines of stdout:
#   CHROMIUM_BIN=/usr/bin/chromium
#   CHROMEDRIVER_BIN=/usr/bin/chromedriver
# (the test reads CHROMIUM_BIN / CHROMEDRIVER_BIN, default these paths).
set -euo pipefail

say() { echo "==> $*" >&2; }

CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
CHROMEDRIVER_BIN="${CHROMEDRIVER_BIN:-/usr/bin/chromedriver}"

if [[ ! -x "$CHROMIUM_BIN" || ! -x "$CHROMEDRIVER_BIN" ]]; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "ensure-chromium: $CHROMIUM_BIN or $CHROMEDRIVER_BIN is missing and we are not root; install Debian's 'chromium' and 'chromium-driver' packages" >&2
    exit 1
  fi
  say "installing Chromium and chromedriver from Debian (apt-get install chromium chromium-driver)"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver >&2
fi

for bin in "$CHROMIUM_BIN" "$CHROMEDRIVER_BIN"; do
  if [[ ! -x "$bin" ]]; then
    echo "ensure-chromium: $bin still missing after the install" >&2
    exit 1
  fi
done
say "$("$CHROMIUM_BIN" --version 2>/dev/null || echo chromium), $("$CHROMEDRIVER_BIN" --version 2>/dev/null | head -n1)"
echo "CHROMIUM_BIN=$CHROMIUM_BIN"
echo "CHROMEDRIVER_BIN=$CHROMEDRIVER_BIN"
