#!/bin/sh
# run-gpt-cuda.sh: the gpt example on a GPU (--device cuda --model tiny, bf16 by default there):
# one process, then mpirun -np 2 (the ranks share the GPUs by local rank: on one GPU both use it)
# with DDP (fp32) and with ZeRO stage 3; each run's checkpoint resumes in a CPU process.
# Without a usable GPU it says so and exits 77, which CTest reports as skipped.
#
#   run-gpt-cuda.sh GPT
#   environment: MPIEXEC (default mpirun)
set -u
if [ $# -lt 1 ]; then
  sed -n '2,8p' "$0"
  exit 2
fi
gpt=$1
mpiexec=${MPIEXEC:-mpirun}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() {
  echo "FAILED: $*"
  exit 1
}
"$gpt" --device cuda --steps 0 --sample-bytes 0 > "$scratch/probe" 2>&1
status=$?
if [ "$status" -eq 2 ] && grep -q "no usable GPU" "$scratch/probe"; then
  echo "skipped: no usable GPU ($(cat "$scratch/probe"))"
  exit 77
fi
[ "$status" -eq 0 ] || fail "gpt --device cuda --steps 0 exited $status: $(cat "$scratch/probe")"

run="--model tiny --steps 6 --eval-every 3 --eval-batches 2 --sample-bytes 20 --threads 1"
check_run() {  # name status
  [ "$2" -eq 0 ] || fail "$1 exited $2: $(cat "$scratch/$1.out")"
  grep -q "step 6: validation loss" "$scratch/$1.out" || fail "$1 did not evaluate at step 6: $(cat "$scratch/$1.out")"
}
resume_on_cpu() {  # name checkpoint
  "$gpt" --device cpu --resume "$2" --steps 7 --eval-every 7 --eval-batches 2 --sample-bytes 0 --threads 2 \
    > "$scratch/$1-cpu.out" 2>&1 || fail "$1's checkpoint did not resume on the CPU: $(cat "$scratch/$1-cpu.out")"
  grep -q "resumed from .* at step 6" "$scratch/$1-cpu.out" || fail "$1's CPU resume: $(cat "$scratch/$1-cpu.out")"
}

"$gpt" $run --device cuda --checkpoint "$scratch/single" > "$scratch/single.out" 2>&1
check_run single $?
grep -q "^gpt: rank 0/1 on .* cuda:0, bf16;" "$scratch/single.out" || fail "start line: $(cat "$scratch/single.out")"
resume_on_cpu single "$scratch/single"

mpi() {  # name args...
  name=$1
  shift
  timeout 600 "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np 2 \
    "$gpt" $run --device cuda "$@" > "$scratch/$name.out" 2>&1
  check_run "$name" $?
}
mpi ddp --precision fp32 --zero-stage 0 --checkpoint "$scratch/ddp.safetensors"
grep -q "DDP, fp32" "$scratch/ddp.out" || fail "expected DDP: $(cat "$scratch/ddp.out")"
resume_on_cpu ddp "$scratch/ddp.safetensors"
mpi zero3 --zero-stage 3 --checkpoint "$scratch/zero3"
grep -q "ZeRO stage 3, bfloat16 compute" "$scratch/zero3.out" || fail "expected ZeRO 3 bf16: $(cat "$scratch/zero3.out")"
resume_on_cpu zero3 "$scratch/zero3"
echo "gpt --device cuda --model tiny: one process, mpirun -np 2 DDP and ZeRO 3 trained; every checkpoint resumed on the CPU"
