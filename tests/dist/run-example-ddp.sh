#!/bin/sh
# run-example-ddp.sh: an example program trained data-parallel under mpirun, checked end to end:
# it exits 0, only rank 0 prints (its header line appears once), and a run stopped halfway,
# checkpointed by rank 0 and resumed by every rank in new processes ends with a checkpoint
# byte-for-byte identical to the straight run's (and so is each rank's own part, where --comm keeps
# state per rank).
#
#   run-example-ddp.sh NP STEPS HALF PROGRAM [ARGS...]
#   environment: MPIEXEC (default mpirun); the ranks run one OpenMP thread each
set -u
if [ $# -lt 4 ]; then
  sed -n '2,9p' "$0"
  exit 2
fi
np=$1 steps=$2 half=$3 program=$4
shift 4
mpiexec=${MPIEXEC:-mpirun}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

run() {  # output-file args...
  output=$1
  shift
  if ! "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np "$np" \
       "$program" "$@" > "$output" 2>&1; then
    echo "FAILED: $mpiexec -np $np $program $*"
    cat "$output"
    exit 1
  fi
}

run "$scratch/straight.out" "$@" --steps "$steps" --checkpoint "$scratch/straight.safetensors"
header=$(head -n 1 "$scratch/straight.out")
count=$(grep -cxF "$header" "$scratch/straight.out")
if [ "$count" -ne 1 ]; then
  echo "FAILED: expected rank 0 alone to print, but its first line appears $count times:"
  cat "$scratch/straight.out"
  exit 1
fi

run "$scratch/first.out" "$@" --steps "$steps" --stop-after "$half" --checkpoint "$scratch/resumed.safetensors"
run "$scratch/second.out" "$@" --steps "$steps" --resume "$scratch/resumed.safetensors" \
    --checkpoint "$scratch/resumed.safetensors"
if ! grep -q "resumed from $scratch/resumed.safetensors at step $half" "$scratch/second.out"; then
  echo "FAILED: the second half did not report resuming at step $half:"
  cat "$scratch/second.out"
  exit 1
fi
if ! cmp "$scratch/straight.safetensors" "$scratch/resumed.safetensors"; then
  echo "FAILED: the resumed run's final checkpoint differs from the straight run's"
  exit 1
fi
# Each rank's own state (--comm with error feedback, local SGD, gossip), where there is one.
for part in "$scratch"/straight.safetensors.rank-*; do
  [ -e "$part" ] || continue
  resumed_part="$scratch/resumed.safetensors.${part#"$scratch"/straight.safetensors.}"
  if ! cmp "$part" "$resumed_part"; then
    echo "FAILED: the resumed run's $(basename "$resumed_part") differs from the straight run's"
    exit 1
  fi
done
echo "$(basename "$program") under mpirun -np $np: rank 0 alone printed; resumed at step $half, final checkpoint identical"
