#!/usr/bin/env bash
# Install (Debian 12, as root) whatever portico needs to build, run and test,
# skipping packages that are already installed. Usage: scripts/setup.sh [--test]
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libevent-dev libnghttp2-dev libssl-dev
  libyaml-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev
  libgrpc-dev libpq-dev libhiredis-dev libjwt-dev libjansson-dev python3 python3-grpcio python3-protobuf curl openssl)
# What the suite runs: cmocka, real clients (nghttp, curl, websockets) and
# nginx as an h2c backend, PostgreSQL for the config store, promtool (from
# prometheus) to check the metrics text, dnsmasq (service discovery) and redis-server
# (distributed rate limits). bench/run.sh and fuzzing install their own extras.
test_pkgs=(libcmocka-dev python3-websockets nghttp2-client nginx clang-format postgresql prometheus
  dnsmasq-base redis-server python3-jwt python3-cryptography python3-h2)

pkgs=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
  pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these services on install in some environments; the tests
# start their own instances on free ports.
for svc in nginx haproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
