#!/bin/sh
# check-program.sh: runs the downstream program (two_layer_net.cpp) as its user would: one
# process, then under mpirun -np 2 with DDP; the program itself fails below the stated accuracy
# or in a world of the wrong size. With PLUGIN_DIR holding libdtrain_cuda.so, the program must
# have loaded that very file (found through its RUNPATH, not through a path into a build tree).
#
#   check-program.sh PROGRAM MPIEXEC|none [PLUGIN_DIR]
set -u
if [ $# -lt 2 ]; then
  sed -n '2,8p' "$0"
  exit 2
fi
program=$1 mpiexec=$2 plugin_dir=${3:-}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

fail() {
  echo "FAILED: $*"
  cat "$out"
  exit 1
}

OMP_NUM_THREADS=1 "$program" --report-cuda-plugin > "$out" 2>&1 || fail "$program --report-cuda-plugin"
cat "$out"
if [ -n "$plugin_dir" ] && [ -e "$plugin_dir/libdtrain_cuda.so" ]; then
  loaded=$(sed -n 's/^cuda plugin loaded from: //p' "$out")
  expected=$(realpath "$plugin_dir/libdtrain_cuda.so")
  [ -e "$loaded" ] && [ "$(realpath "$loaded")" = "$expected" ] ||
    fail "the program loaded libdtrain_cuda.so from '$loaded', expected $expected"
fi
if [ "$mpiexec" != none ]; then
  "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np 2 \
    "$program" --world-size 2 > "$out" 2>&1 || fail "$mpiexec -np 2 $program --world-size 2"
  cat "$out"
fi
