#!/bin/sh
# run-mismatched-ranks.sh: two ranks of the gpt example whose only difference is --heads (the
# same parameter shapes, so the shape check alone would let them train) must be refused at start:
# the job ends with a non-zero exit, and every rank reports the setting and both values.
#
#   run-mismatched-ranks.sh GPT
#   environment: MPIEXEC (default mpirun)
set -u
if [ $# -lt 1 ]; then
  sed -n '2,7p' "$0"
  exit 2
fi
gpt=$1
mpiexec=${MPIEXEC:-mpirun}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
model="--context 16 --d-model 16 --layers 1 --batch 4 --threads 1 --steps 3 --sample-bytes 0"
timeout 120 "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 \
  -np 1 "$gpt" $model --heads 4 : -np 1 "$gpt" $model --heads 2 > "$scratch/out" 2>&1
status=$?
if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
  echo "FAILED: ranks with --heads 4 and --heads 2 were not refused (exit $status):"
  cat "$scratch/out"
  exit 1
fi
expected="rank 1 has blocks.0.attn.heads=2, rank 0 blocks.0.attn.heads=4"
if [ "$(grep -c "gpt: error: .*$expected" "$scratch/out")" -ne 2 ]; then
  echo "FAILED: expected both ranks to report '$expected', got (exit $status):"
  cat "$scratch/out"
  exit 1
fi
if grep -q "^step \|loss" "$scratch/out"; then
  echo "FAILED: the mismatched ranks trained:"
  cat "$scratch/out"
  exit 1
fi
echo "ranks with --heads 4 and --heads 2 refused at start, both reporting: $expected"
