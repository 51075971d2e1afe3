#!/usr/bin/env bash
# Runs scripts/check-plugin-symbols on the negative control (duplicate_symbol_plugin.cpp): it must
# fail, reporting the duplicated dtrain::cuda::allow_tf32() and the relocation against it.
#   check_negative_control.sh CHECK_SCRIPT PLUGIN.so OBJECT_DIR PROGRAM
set -uo pipefail
output=$("$@" 2>&1)
status=$?
echo "$output"
fail() { echo "negative control: $1"; exit 1; }
[ "$status" -eq 1 ] || fail "expected the check to exit 1 on the duplicated symbol, it exited $status"
grep -q "functions it defines that .* also exports" <<< "$output" || fail "the duplicated definition was not reported"
grep -q "dynamic relocations against functions it defines itself" <<< "$output" || fail "the self-relocation was not reported"
grep -q "dtrain::cuda::allow_tf32()" <<< "$output" || fail "dtrain::cuda::allow_tf32() was not named"
echo "negative control: the check flagged the duplicated symbol, as it must"
