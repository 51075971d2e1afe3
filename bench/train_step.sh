#!/bin/bash
# Training step, dtrain vs PyTorch: both reference models (MLP, GPT) at 1 and 2 threads, one
# table. Each time is the median over rounds of each run's median ms/step; within a round dtrain
# and PyTorch run back to back (taking turns at going first), so a burst of load from elsewhere
# hits both rather than one, and the ratio is the median over rounds of that round's
# dtrain / PyTorch. "cores busy" is CPU time / wall time over the timed steps (median
# over rounds): about the thread count when the run had its cores; lower means other processes
# took them, and that row's ratio is not a fair comparison.
#
#   bench/train_step.sh [build-dir]        # default build-dir: build; ROUNDS=5 by default
#
# Needs bench_train_step built in build-dir and Debian's python3-torch (/usr/bin/python3).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build}
rounds=${ROUNDS:-5}
dtrain_bench=$build/bench/bench_train_step
torch_bench=$repo/bench/train_step_torch.py
if [[ ! -x $dtrain_bench ]]; then
  echo "train_step.sh: $dtrain_bench not found (cmake --build $build --target bench_train_step)" >&2
  exit 2
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT

# One process per run, with every thread pool the library might use held to the thread count.
run() {  # library model threads
  local library=$1 model=$2 threads=$3
  local -a environment=(OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads")
  if [[ $library == dtrain ]]; then
    env "${environment[@]}" "$dtrain_bench" --model "$model" --threads "$threads"
  else
    # Debian's torch runs GEMM on OpenBLAS's own pthreads next to libgomp's team; with libgomp's
    # default (spinning) wait policy the two pools fight over the cores and PyTorch's 2-thread
    # step takes about twice as long (GPT: ~1070 ms vs ~550 ms passive, measured here). The table
    # gives PyTorch its faster setting; TORCH_OMP_WAIT_POLICY= (empty) runs it with the default.
    local policy=${TORCH_OMP_WAIT_POLICY-passive}
    if [[ -n $policy ]]; then environment+=(OMP_WAIT_POLICY="$policy"); fi
    env "${environment[@]}" /usr/bin/python3 "$torch_bench" --model "$model" --threads "$threads"
  fi
}

echo "load before: $(uptime | sed 's/.*load average/load average/'); PyTorch OMP_WAIT_POLICY=${TORCH_OMP_WAIT_POLICY-passive}" >&2
for ((round = 0; round < rounds; ++round)); do
  for model in mlp gpt; do
    for threads in 1 2; do
      if ((round % 2 == 0)); then order="dtrain pytorch"; else order="pytorch dtrain"; fi
      for library in $order; do
        run "$library" "$model" "$threads" | tee -a "$results" >&2
      done
    done
  done
done
echo "load after: $(uptime | sed 's/.*load average/load average/')" >&2

# key=value lines -> one row per (model, threads): medians over rounds, and the ratio.
awk '
  function median(list,    values, n, i, j, t) {
    n = split(list, values, " ")
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && values[j - 1] + 0 > values[j] + 0; --j) {
      t = values[j]; values[j] = values[j - 1]; values[j - 1] = t
    }
    return n % 2 ? values[(n + 1) / 2] : (values[n / 2] + values[n / 2 + 1]) / 2
  }
  {
    delete field
    for (i = 1; i <= NF; ++i) { split($i, kv, "="); field[kv[1]] = kv[2] }
    key = field["model"] SUBSEP field["threads"]
    library = field["library"]
    for (name in field) if (name ~ /_ms$/ || name == "cores_busy") times[key, library, name] = times[key, library, name] " " field[name]
    params[key, library] = field["params"]
    keys[key] = 1
  }
  END {
    printf "| model | threads | params (dtrain / pytorch) | dtrain ms/step | pytorch ms/step | ratio | cores busy (dtrain / pytorch) |\n"
    printf "|---|---|---|---|---|---|---|\n"
    for (model_index = 1; model_index <= 2; ++model_index) for (threads = 1; threads <= 2; ++threads) {
      model = model_index == 1 ? "mlp" : "gpt"
      key = model SUBSEP threads
      if (!(key in keys)) continue
      d = median(times[key, "dtrain", "median_ms"]); p = median(times[key, "pytorch", "median_ms"])
      # The ratio pairs the two runs of each round (back to back, so under the same load).
      n = split(times[key, "dtrain", "median_ms"], dtrain_runs, " ")
      split(times[key, "pytorch", "median_ms"], pytorch_runs, " ")
      ratios = ""
      for (i = 1; i <= n; ++i) ratios = ratios " " dtrain_runs[i] / pytorch_runs[i]
      printf "| %s | %d | %s / %s | %.2f | %.2f | %.2f | %.2f / %.2f |\n", model, threads, params[key, "dtrain"],
             params[key, "pytorch"], d, p, median(ratios), median(times[key, "dtrain", "cores_busy"]),
             median(times[key, "pytorch", "cores_busy"])
    }
    printf "\nPhases, median ms (dtrain / pytorch); forward includes the loss:\n\n"
    printf "| model | threads | forward | backward | optimizer |\n|---|---|---|---|---|\n"
    for (model_index = 1; model_index <= 2; ++model_index) for (threads = 1; threads <= 2; ++threads) {
      model = model_index == 1 ? "mlp" : "gpt"
      key = model SUBSEP threads
      if (!(key in keys)) continue
      printf "| %s | %d", model, threads
      split("forward_ms backward_ms optimizer_ms", phases, " ")
      for (i = 1; i <= 3; ++i) {
        printf " | %.2f / %.2f", median(times[key, "dtrain", phases[i]]), median(times[key, "pytorch", phases[i]])
      }
      printf " |\n"
    }
  }' "$results"
