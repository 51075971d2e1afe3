#!/bin/bash
# Does a slow-network method still learn? The mlp example (784-1024-1024-10 on Fashion-MNIST,
# AdamW, batch 128 per rank) for 2 epochs at 2 ranks with each --comm method, one after another:
# its test accuracy after the 2 epochs, the difference to DDP's in points, the payload bytes per
# step and the seconds per step (its --metrics records, the last 2 epochs' mean). The issue's bar:
# every method within 1.5 points of DDP.
#
#   bench/comm_accuracy.sh [build-dir]      # default build-dir: build
#
# Settings (environment): METHODS="ddp powersgd:4 int8 1bit topk:0.01 local-sgd:8 gossip",
# EPOCHS=2, RANKS=2, START=0 (--comm-start-step), EXTRA="" (more mlp flags).
# Needs the mlp example built in build-dir (an MPI build), mpirun, and Debian's Fashion-MNIST
# (dataset-fashion-mnist).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build}
methods=${METHODS:-ddp powersgd:4 int8 1bit topk:0.01 local-sgd:8 gossip}
epochs=${EPOCHS:-2}
ranks=${RANKS:-2}
start=${START:-0}
extra=${EXTRA:-}
mlp=$build/mlp
if [[ ! -x $mlp ]]; then
  echo "comm_accuracy.sh: $mlp not found (cmake --build $build --target mlp)" >&2
  exit 2
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "mlp, $epochs epochs at $ranks ranks (one thread each), --comm-start-step $start $extra"
echo
echo "| --comm | test accuracy | vs DDP (points) | payload bytes per step | s per step |"
echo "|--------|--------------:|----------------:|-----------------------:|-----------:|"
ddp_accuracy=""
for method in $methods; do
  name=${method//[:.]/_}
  # shellcheck disable=SC2086  # EXTRA is a list of flags
  if ! mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np "$ranks" \
       "$mlp" --epochs "$epochs" --threads 1 --comm "$method" --comm-start-step "$start" \
       --metrics "$scratch/$name.jsonl" --log-every 50 $extra > "$scratch/$name.out" 2>&1; then
    echo "| $method | failed: $(tail -n 1 "$scratch/$name.out") | | | |"
    continue
  fi
  accuracy=$(grep -o "epoch $epochs: test loss [0-9.]*, test accuracy [0-9.]*%" "$scratch/$name.out" |
             sed 's/.*test accuracy \([0-9.]*\)%/\1/')
  # Bytes and seconds per step: the mean over the records (each the mean of its window).
  read -r bytes seconds < <(python3 - "$scratch/$name.jsonl" <<'EOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1]) if '"comm_bytes_per_step"' in line]
n = len(records)
print(f"{sum(r['comm_bytes_per_step'] for r in records) / n:.0f} {sum(r['step_s'] for r in records) / n:.4f}")
EOF
)
  [[ $method == ddp ]] && ddp_accuracy=$accuracy
  difference=""
  if [[ -n $ddp_accuracy ]]; then difference=$(python3 -c "print(f'{$accuracy - $ddp_accuracy:+.2f}')"); fi
  echo "| $method | $accuracy% | $difference | $bytes | $seconds |"
done
