#!/usr/bin/env bash
# portico vs nginx vs HAProxy in one run; writes bench/RESULTS.md.
#
#   bench/run.sh            # full run: 3 repetitions, ~12 minutes
#   bench/run.sh --quick    # 1 repetition, short loads, ~2 minutes
#   bench/run.sh --help     # every option of bench/bench.py
#   bench/run.sh --resilience [options of bench/resilience.py]
#                           # a backend turning slow then failing, portico vs
#                           # nginx (~5 minutes); writes its section of RESULTS.md
#
# As root on Debian 12: installs what is missing (nginx, haproxy, wrk,
# nghttp2-client for h2load/nghttp, and portico's build dependencies), builds
# portico and bench_backend in build-bench/, then runs bench/bench.py, which
# starts and stops every process itself (127.0.0.1 only, free ports).
set -euo pipefail
cd "$(dirname "$0")/.."

case " $* " in
  *" -h "* | *" --help "*) exec /usr/bin/python3 bench/bench.py --help ;;
esac

# Build dependencies (skips what is installed), then the benchmark's tools.
scripts/setup.sh
pkgs=(nginx haproxy wrk nghttp2-client util-linux procps python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian may start the packaged services on install; the benchmark runs its
# own instances on free ports, so the packaged ones are stopped.
for svc in nginx haproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTICO_TESTS=OFF >/dev/null
make -C build-bench -j"$(nproc)" portico bench_backend bench_route_match >/dev/null

if [ "${1:-}" = "--resilience" ]; then
  shift
  exec /usr/bin/python3 bench/resilience.py --portico build-bench/portico "$@"
fi

# Idle-connection memory test: one fd per connection on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec /usr/bin/python3 bench/bench.py \
  --portico build-bench/portico --backend build-bench/bench/bench_backend \
  --route-bench build-bench/bench/bench_route_match "$@"
