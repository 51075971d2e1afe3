#!/bin/bash
# Training over a slow network: the gpt example on 2 simulated hosts x 1 rank with the link
# between them limited to each of RATES (sim-cluster's SIM_CLUSTER_RATE; "unthrottled": no
# limit), by each method — DDP, ZeRO-1 and the examples' --comm methods. Prints one Markdown
# table per rate: the step time (mean over the second half of the run), its ratio to DDP's, the
# payload bytes handed to collectives per step, and the training loss (mean over the last
# LOG_EVERY steps) and validation loss after STEPS steps.
#
#   bench/slow_network.sh [build-dir]      # default build-dir: build
#
# Settings (environment): RATES="200mbit 1gbit unthrottled" STEPS=40 (LOG_EVERY=STEPS/2)
# METHODS="ddp zero1 powersgd:4 int8 1bit topk:0.01 local-sgd:8 gossip" (zero1 is --zero-stage 1,
# the others --comm) MODEL="--d-model 256 --layers 4 --heads 4 --context 64 --batch 4"
# RESULTS=dir (keep the metrics and logs; default: a temporary folder, removed) SIM_CLUSTER (the
# tool; default ../shared/tools/sim-cluster beside the repository).
#
# The step time and bytes come from the metrics records' "step_s" and "comm_bytes_per_step"
# (examples/, train/trainer_step_log.h); from a gpt that does not write them the step time is
# derived from "tokens_per_s" and the bytes show as "-". A method the program rejects (a usage
# error: exit status 2, e.g. a gpt without --comm) shows as a row "skipped" with its reason, and
# the other methods still run. Needs root (network namespaces), mpirun, python3, and gpt built.
# Holds /tmp/dtrain-sim-cluster.lock while a simulated cluster is up, one rate at a time.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build}
rates=${RATES:-200mbit 1gbit unthrottled}
steps=${STEPS:-40}
log_every=${LOG_EVERY:-$((steps / 2))}
methods=${METHODS:-ddp zero1 powersgd:4 int8 1bit topk:0.01 local-sgd:8 gossip}
model=${MODEL:---d-model 256 --layers 4 --heads 4 --context 64 --batch 4}
sim_cluster=${SIM_CLUSTER:-$repo/../shared/tools/sim-cluster}
[[ -x $build/gpt ]] || { echo "slow_network.sh: $build/gpt not found (cmake --build $build --target gpt)" >&2; exit 2; }
[[ -f $sim_cluster ]] || { echo "slow_network.sh: no sim-cluster tool at $sim_cluster (SIM_CLUSTER=...)" >&2; exit 2; }
if [[ -n ${RESULTS:-} ]]; then
  results=$RESULTS
  mkdir -p "$results"
else
  results=$(mktemp -d)
  trap 'rm -rf "$results"' EXIT
fi

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
gpt_flags=($model --threads 1 --steps "$steps" --log-every "$log_every" --eval-every 1000000 --eval-batches 8 --sample-bytes 0)

method_flags() {
  case $1 in
    ddp) echo "--zero-stage 0" ;;
    zero1) echo "--zero-stage 1" ;;
    *) echo "--comm $1" ;;
  esac
}

for rate in $rates; do
  echo "slow_network.sh: $rate" >&2
  (
    flock -w 1800 9 || { echo "slow_network.sh: the sim-cluster lock stayed taken" >&2; exit 1; }
    down() { sh "$sim_cluster" down > /dev/null 2>&1 || true; }
    down
    trap down EXIT
    if [[ $rate == unthrottled ]]; then
      env -u SIM_CLUSTER_RATE sh "$sim_cluster" up 2 1
    else
      SIM_CLUSTER_RATE=$rate sh "$sim_cluster" up 2 1
    fi
    # shellcheck disable=SC2046  # the tool's arguments are meant to split
    mpi=(mpirun $(sh "$sim_cluster" args) --oversubscribe --bind-to none -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -np 2)
    for method in $methods; do
      name=${method//:/_}
      rm -f "$results/$rate-$name.jsonl"
      # shellcheck disable=SC2046  # the method's flags are meant to split
      if "${mpi[@]}" "$build/gpt" "${gpt_flags[@]}" $(method_flags "$method") --metrics "$results/$rate-$name.jsonl" \
        > "$results/$rate-$name.log" 2>&1; then
        status=0
      else
        status=$?
      fi
      echo "$status" > "$results/$rate-$name.status"
      [[ $status -eq 0 ]] || echo "slow_network.sh: $method at $rate exited with $status (see $results/$rate-$name.log)" >&2
    done
  ) 9> /tmp/dtrain-sim-cluster.lock
done

python3 - "$results" "$rates" "$methods" "$model" "$steps" <<'PYTHON'
import json, sys

results, rates, methods, model, steps = sys.argv[1:6]
model_flags = model.split()
def flag(name, default):
    return int(model_flags[model_flags.index(name) + 1]) if name in model_flags else default
batch, context, ranks = flag("--batch", 16), flag("--context", 128), 2

def reason(log_path):
    """The program's one-line reason for refusing (its last line naming an error)."""
    lines = [line.strip() for line in open(log_path, errors="replace") if line.strip()]
    for line in reversed(lines):
        if "gpt:" in line:  # run_program's "gpt: <reason>" (tools/command_line/program_exit.h)
            return line.replace("|", "/")[:160]
    return lines[-1][:160] if lines else "no output"

for rate in rates.split():
    rows, ddp_step = [], None
    for method in methods.split():
        name = method.replace(":", "_")
        base = f"{results}/{rate}-{name}"
        status = int(open(f"{base}.status").read())
        if status != 0:
            what = "skipped (the program rejects it)" if status == 2 else f"failed (exit {status})"
            rows.append(f"| {method} | {what}: {reason(base + '.log')} | - | - | - | - |")
            continue
        records = [json.loads(line) for line in open(f"{base}.jsonl")]
        training = [r for r in records if "loss" in r]
        last = training[-1]
        step_s = last.get("step_s", batch * ranks * context / last["tokens_per_s"])
        comm = last.get("comm_bytes_per_step")
        validation = [r["val_loss"] for r in records if "val_loss" in r]
        if method == "ddp":
            ddp_step = step_s
        rows.append((method, step_s, comm, last["loss"], validation[-1] if validation else None))
    print(f"## {rate}, 2 hosts x 1 rank, {steps} steps\n")
    print("| method | step ms | vs DDP | MB/step handed to collectives | training loss | validation loss |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        if isinstance(row, str):
            print(row)
            continue
        method, step_s, comm, loss, validation = row
        ratio = f"{step_s / ddp_step:.2f}x" if ddp_step else "-"
        comm_text = f"{comm / 1e6:.3f}" if comm is not None else "-"
        validation_text = f"{validation:.4f}" if validation is not None else "-"
        print(f"| {method} | {step_s * 1e3:.0f} | {ratio} | {comm_text} | {loss:.4f} | {validation_text} |")
    print()
PYTHON
