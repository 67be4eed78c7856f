#!/usr/bin/env bash
# Install what is missing, build portico, start the demo backends and run
# portico in the foreground on config/portico.yaml. Ctrl-C stops everything.
#   curl http://127.0.0.1:8080/api/hello
#   /usr/bin/python3 examples/demo/greet.py you      # gRPC through the gateway
#   build/porticoctl list routes                     # the admin API
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTICO_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target portico porticoctl >/dev/null

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
/usr/bin/python3 examples/demo/http_backend.py 127.0.0.1 9001 & pids+=($!)
/usr/bin/python3 examples/demo/greeter_server.py 127.0.0.1 9002 & pids+=($!)
echo "demo backends: HTTP on 127.0.0.1:9001, gRPC demo.v1.Greeter on 127.0.0.1:9002"
echo "try:  curl http://127.0.0.1:8080/api/hello   and   /usr/bin/python3 examples/demo/greet.py you"
echo "admin API on 127.0.0.1:9901:  build/porticoctl list routes   or   curl http://127.0.0.1:9901/admin/routes"
./build/portico --config config/portico.yaml &
pids+=($!)
wait "${pids[-1]}"
