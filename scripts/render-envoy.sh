#!/usr/bin/env bash
# Prints envoy/envoy.yaml with its ports moved to the ones in the
# environment (ENVOY_PORT, ADMIN_PORT, DEMO_PORT, DEMO_B_PORT, CONTROL_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
sed -e "s/port_value: 10000/port_value: ${ENVOY_PORT:-10000}/" \
    -e "s/port_value: 9901/port_value: ${ADMIN_PORT:-9901}/" \
    -e "s/port_value: 8080/port_value: ${DEMO_PORT:-8080}/" \
    -e "s/port_value: 8082/port_value: ${DEMO_B_PORT:-8082}/" \
    -e "s/port_value: 8081/port_value: ${CONTROL_PORT:-8081}/" \
    envoy/envoy.yaml
