#!/usr/bin/env bash
# Layering rules of STYLE.md, checked on every run:
#  1. a module's private header (src/<m>/<m>_int.h or *_int.h) is included
#     only from its own folder (and from its own unit tests, tests/unit/<m>/);
#  2. include/portico/ (the plugin ABI) includes nothing from src/;
#  3. built-in filters include only the ABI and core helpers.
set -u
cd "$(dirname "$0")/../.."
fail=0
while IFS= read -r line; do
  file=${line%%:*}
  hdr=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$line")
  mod=${hdr%%/*}
  case "$file" in
    src/"$mod"/*|tests/unit/"$mod"/*) ;;
    *) echo "layering: $file includes private header $hdr"; fail=1 ;;
  esac
done < <(grep -rn --include='*.c' --include='*.h' -E '#include "[a-z0-9_]+/[a-z0-9_]*_int\.h"' src tests fuzz bench 2>/dev/null)

if grep -rn -E '#include "(core|net|http|http1|http2|route|conf|discovery|proxy|upstream|grpc|observe|websocket|filters|auth|transcode|ratelimit|admin|store|ctl)/' include/; then
  echo "layering: include/portico/ must not include src/ headers"; fail=1
fi
if grep -rn -E '#include "(net|http|http1|http2|route|conf|discovery|proxy|upstream|grpc|observe|websocket|auth|transcode|ratelimit|admin|store)/' src/filters/; then
  echo "layering: built-in filters use only the ABI (include/portico/) and core helpers"; fail=1
fi
[ $fail -eq 0 ] && echo "layering: ok"
exit $fail
