#!/usr/bin/env bash
# run-subdirectory.sh: tests/downstream built with add_subdirectory on the dtrain source tree, as
# a FetchContent user would: it must build only dtrain's libraries (no examples, tools, tests or
# benchmarks) and the program must pass check-program.sh. The CUDA backend is off (-DDTRAIN_CUDA=OFF:
# nvcc is the slowest compiler here). The build folder, build-downstream-subdirectory/, sits at
# the depth of build/, so with ccache keyed relative to the repository (CCACHE_BASEDIR) dtrain's
# sources compile as cache hits of the main build.
#
#   run-subdirectory.sh SOURCE_DIR MPIEXEC|none
set -euo pipefail
if [ $# -ne 2 ]; then
  sed -n '2,9p' "$0"
  exit 2
fi
source=$(realpath "$1")
mpiexec=$2
here=$(cd "$(dirname "$0")" && pwd)
build=$source/build-downstream-subdirectory
rm -rf "$build"
mkdir -p "$build"
export CCACHE_BASEDIR=$source
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDTRAIN_SOURCE_DIR="$source" -DDTRAIN_CUDA=OFF \
  "${launcher[@]}" > "$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" | tail -n 1
for program in demo mlp gpt dtrain-consolidate dtrain-convert test_core bench_train_step; do
  if [ -n "$(find "$build" -name "$program" -type f)" ]; then
    echo "FAILED: add_subdirectory(dtrain) built $program; a user's build must get only the libraries"
    exit 1
  fi
done
"$here/check-program.sh" "$build/two_layer_net" "$mpiexec"
rm -rf "$build"
