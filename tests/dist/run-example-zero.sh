#!/bin/sh
# run-example-zero.sh: an example program trained with ZeRO under mpirun, checked end to end:
# a run stopped halfway, saved as a sharded checkpoint and resumed by new processes at the same
# world size and stage ends with the same weights and optimizer state, bit for bit, as the
# straight run (both consolidated with dtrain-consolidate --all); and the halfway checkpoint
# also resumes at another world size and stage, and in one process with DDP.
#
#   run-example-zero.sh NP STAGE PRECISION STEPS HALF CONSOLIDATE PROGRAM [ARGS...]
#   environment: MPIEXEC (default mpirun); the ranks run one OpenMP thread each
set -u
if [ $# -lt 7 ]; then
  sed -n '2,10p' "$0"
  exit 2
fi
np=$1 stage=$2 precision=$3 steps=$4 half=$5 consolidate=$6 program=$7
shift 7
mpiexec=${MPIEXEC:-mpirun}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

run() {  # ranks output-file args...
  ranks=$1 output=$2
  shift 2
  if ! "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np "$ranks" \
       "$program" "$@" > "$output" 2>&1; then
    echo "FAILED: $mpiexec -np $ranks $program $*"
    cat "$output"
    exit 1
  fi
}
expect_resumed() {  # output-file checkpoint
  if ! grep -q "resumed from $2 at step $half" "$1"; then
    echo "FAILED: the run did not report resuming at step $half:"
    cat "$1"
    exit 1
  fi
}

zero="--zero-stage $stage --precision $precision"
run "$np" "$scratch/straight.out" "$@" $zero --steps "$steps" --checkpoint "$scratch/straight"
if ! grep -q "ZeRO stage $stage" "$scratch/straight.out" || ! grep -q "^memory: zero-$stage" "$scratch/straight.out"; then
  echo "FAILED: expected the header to name ZeRO stage $stage and a memory line at the end:"
  cat "$scratch/straight.out"
  exit 1
fi
run "$np" "$scratch/first.out" "$@" $zero --steps "$steps" --stop-after "$half" --checkpoint "$scratch/half"
cp -r "$scratch/half" "$scratch/half-copy"
run "$np" "$scratch/second.out" "$@" $zero --steps "$steps" --resume "$scratch/half" --checkpoint "$scratch/resumed"
expect_resumed "$scratch/second.out" "$scratch/half"
# Consolidated from the same path: the file's metadata names the directory it came from.
mv "$scratch/straight" "$scratch/final"
"$consolidate" "$scratch/final" "$scratch/straight.safetensors" --all > /dev/null || exit 1
rm -rf "$scratch/final" && mv "$scratch/resumed" "$scratch/final"
"$consolidate" "$scratch/final" "$scratch/resumed.safetensors" --all > /dev/null || exit 1
if ! cmp "$scratch/straight.safetensors" "$scratch/resumed.safetensors"; then
  echo "FAILED: the resumed run's final state differs from the straight run's"
  exit 1
fi

# The halfway checkpoint at another world size and stage, and in one process without ZeRO.
other_np=$((np + 1)) other_stage=$(((stage + 1) % 4))
run "$other_np" "$scratch/other.out" "$@" --zero-stage "$other_stage" --steps "$steps" --resume "$scratch/half-copy"
expect_resumed "$scratch/other.out" "$scratch/half-copy"
if ! OMP_NUM_THREADS=1 "$program" "$@" --steps "$steps" --resume "$scratch/half-copy" > "$scratch/plain.out" 2>&1; then
  echo "FAILED: $program $* --resume (one process, DDP)"
  cat "$scratch/plain.out"
  exit 1
fi
expect_resumed "$scratch/plain.out" "$scratch/half-copy"
echo "$(basename "$program") ZeRO stage $stage $precision under mpirun -np $np: resumed bitwise at step $half;" \
     "the checkpoint also resumed at np $other_np stage $other_stage and in one process"
