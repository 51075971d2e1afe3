#!/usr/bin/env bash
# Negative control for scripts/check-std-includes: pointed at this folder's fixtures, each lacking
# an include, it must fail and report each of them, through the lint and through clang alike.
# Usage: tests/std_includes/negative-control.sh BUILD_DIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: tests/std_includes/negative-control.sh BUILD_DIR" >&2; exit 2; }
cd "$(dirname "$0")/../.."
fixtures=(tests/std_includes/uses_uint8_t_without_cstdint.h tests/std_includes/uses_tensor_without_its_header.h)

status=0
output="$(scripts/check-std-includes "$1" "${fixtures[@]}" 2>&1)" || status=$?
echo "$output"
if [ "$status" -ne 1 ]; then
  echo "negative-control.sh: scripts/check-std-includes exited with $status on fixtures that lack includes, not 1" >&2
  exit 1
fi
expect() {  # $1: a line the check must print, as an extended regex; $2: what it means
  grep -qE "$1" <<< "$output" || { echo "negative-control.sh: scripts/check-std-includes did not report $2" >&2; exit 1; }
}
expect "^tests/std_includes/uses_uint8_t_without_cstdint\.h:9: uses uint8_t without including .*<cstdint>" \
       "tests/std_includes/uses_uint8_t_without_cstdint.h (the lint: uint8_t without <cstdint>)"
expect "^tests/std_includes/uses_tensor_without_its_header\.h:8:[0-9]+: error: unknown type name 'Tensor'" \
       "tests/std_includes/uses_tensor_without_its_header.h (clang + libc++: a header compiled alone)"
echo "negative-control.sh: scripts/check-std-includes reported every fixture"
