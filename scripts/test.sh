#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite twice: a
# normal build (unit, fuzz-corpus replay, lint, integration, interop) and an
# AddressSanitizer + UndefinedBehaviorSanitizer build (the same tests).
# Usage: scripts/test.sh [ctest args, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
jobs=$(nproc)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTICO_TESTS=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" 2>&1 | grep -E "(error|warning):" || true
  cmake --build "$dir" -j"$jobs" >/dev/null
  if [ "${#ctest_args[@]}" -gt 0 ]; then
    ctest --test-dir "$dir" --output-on-failure "${ctest_args[@]}"
    return
  fi
  # Unit tests, corpus replays and lint checks in parallel; tests that start
  # real processes on loopback ports one at a time.
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" -L "unit|fuzz|lint"
  ctest --test-dir "$dir" --output-on-failure -L "integration|interop"
}

ctest_args=("${@}")
echo "== normal build"
run_suite build
echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
run_suite build-asan -DPORTICO_SANITIZE=ON
echo "== all tests passed"
