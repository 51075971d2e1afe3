#!/bin/sh
# run-hierarchical-setting.sh: DTRAIN_HIERARCHICAL_ALLREDUCE must be auto, 1 or 0 and the same on
# every rank (the ranks would otherwise build different backends and hang in mismatched
# collectives). A bad value, and values that differ between the ranks, must end the job at
# dist::init with a named error on every rank.
#
#   run-hierarchical-setting.sh PROGRAM
#     PROGRAM: a dtrain program that reports its errors as "<name>: error: ..." (the mlp example)
#   environment: MPIEXEC (default mpirun)
set -u
if [ $# -lt 1 ]; then
  sed -n '2,9p' "$0"
  exit 2
fi
program=$1
mpiexec=${MPIEXEC:-mpirun}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
flags="--allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1"

# expect_refusal NAME EXPECTED MPIRUN-ARGS...: the job fails and both ranks print EXPECTED.
expect_refusal() {
  name=$1 expected=$2
  shift 2
  # shellcheck disable=SC2086  # the flags are meant to split
  timeout 120 "$mpiexec" $flags "$@" > "$scratch/out" 2>&1
  status=$?
  if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
    echo "FAILED: $name was not refused (exit $status):"
    cat "$scratch/out"
    exit 1
  fi
  for rank in 0 1; do
    if ! grep -q "rank $rank.*$expected" "$scratch/out"; then
      echo "FAILED: $name: expected rank $rank to report '$expected', got (exit $status):"
      cat "$scratch/out"
      exit 1
    fi
  done
  echo "$name refused, both ranks reporting: $expected"
}

expect_refusal "DTRAIN_HIERARCHICAL_ALLREDUCE=sometimes" "DTRAIN_HIERARCHICAL_ALLREDUCE: expected auto, 1 or 0, got 'sometimes'" \
  -x DTRAIN_HIERARCHICAL_ALLREDUCE=sometimes -np 2 "$program"
expect_refusal "DTRAIN_HIERARCHICAL_ALLREDUCE=0 on rank 0 and 1 on rank 1" \
  "DTRAIN_HIERARCHICAL_ALLREDUCE: expected the same value on every rank" \
  -np 1 env DTRAIN_HIERARCHICAL_ALLREDUCE=0 "$program" : -np 1 env DTRAIN_HIERARCHICAL_ALLREDUCE=1 "$program"
