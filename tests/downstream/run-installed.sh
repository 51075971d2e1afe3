#!/usr/bin/env bash
# run-installed.sh: dtrain as a user gets it. Installs an already built tree into a temporary
# prefix (cmake --install), checks that no installed file holds the build folder's path, builds
# tests/downstream against the prefix with find_package(dtrain) and again with pkg-config alone,
# and runs both (check-program.sh: accuracy, mpirun -np 2 with DDP, the installed CUDA plugin).
#
#   run-installed.sh BUILD_DIR MPIEXEC|none
#   ccache, when installed, compiles the downstream program (keyed relative to the prefix's folder).
set -euo pipefail
if [ $# -ne 2 ]; then
  sed -n '2,8p' "$0"
  exit 2
fi
build=$(realpath "$1")
mpiexec=$2
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export CCACHE_BASEDIR=$scratch
launcher=()
cmake_launcher=()
if command -v ccache > /dev/null; then
  launcher=(ccache)
  cmake_launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" > "$scratch/install.log" || { cat "$scratch/install.log"; exit 1; }
echo "installed into $prefix:"
(cd "$prefix" && find . -type f -not -path "./include/*" | sort && echo "./include/dtrain: $(find include -name '*.h' | wc -l) headers")
if grep -rlF "$build" "$prefix"; then
  echo "FAILED: the installed files above hold the build folder's path $build"
  exit 1
fi

echo "--- find_package(dtrain)"
cmake -S "$here" -B "$scratch/cmake-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  "${cmake_launcher[@]}" > "$scratch/configure.log" || { cat "$scratch/configure.log"; exit 1; }
cmake --build "$scratch/cmake-build"
"$here/check-program.sh" "$scratch/cmake-build/two_layer_net" "$mpiexec" "$prefix/lib"

echo "--- pkg-config dtrain"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
echo "pkg-config --cflags --libs dtrain: $(pkg-config --cflags --libs dtrain)"
(cd "$scratch" && "${launcher[@]}" c++ -O2 "$here/two_layer_net.cpp" -o two_layer_net_pc $(pkg-config --cflags --libs dtrain))
"$here/check-program.sh" "$scratch/two_layer_net_pc" none "$prefix/lib"
