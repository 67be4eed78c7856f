#!/usr/bin/env bash
# Every C file in the repository follows .clang-format.
set -u
cd "$(dirname "$0")/../.."
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 1; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null)
[ -z "$files" ] && files=$(find src include tests fuzz bench -name '*.[ch]')
out=$(clang-format --dry-run --Werror $files 2>&1)
if [ -n "$out" ]; then
  echo "$out" | grep -E '^[^ ].*(warning|error)' | sed -E 's/:[0-9]+:[0-9]+: .*//' | sort -u | sed 's/^/needs clang-format: /'
  exit 1
fi
echo "format: ok"
