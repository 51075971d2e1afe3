#!/usr/bin/env bash
# run-debian-package.sh: the Debian package of an already built tree (cpack -G DEB) must declare
# its dependencies, and, unpacked (dpkg -x, no root needed), serve tests/downstream through
# find_package(dtrain) like an installed prefix (check-program.sh: accuracy, mpirun -np 2, the
# packaged CUDA plugin).
#
#   run-debian-package.sh BUILD_DIR MPIEXEC|none
set -euo pipefail
if [ $# -ne 2 ]; then
  sed -n '2,7p' "$0"
  exit 2
fi
build=$(realpath "$1")
mpiexec=$2
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export CCACHE_BASEDIR=$scratch
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

(cd "$scratch" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$scratch/package" > cpack.log) ||
  { cat "$scratch/cpack.log"; exit 1; }
package=$(echo "$scratch"/package/*.deb)
echo "$(basename "$package"): $(du -h "$package" | cut -f1)"
dpkg-deb --field "$package" Package Version Architecture Depends
depends=$(dpkg-deb --field "$package" Depends)
for needed in libeigen3-dev zlib1g-dev; do
  [[ $depends == *"$needed"* ]] || { echo "FAILED: the package does not declare $needed"; exit 1; }
done

dpkg -x "$package" "$scratch/root"
cmake -S "$here" -B "$scratch/cmake-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$scratch/root/usr" \
  "${launcher[@]}" > "$scratch/configure.log" || { cat "$scratch/configure.log"; exit 1; }
cmake --build "$scratch/cmake-build"
"$here/check-program.sh" "$scratch/cmake-build/two_layer_net" "$mpiexec" "$scratch/root/usr/lib"
