#!/bin/bash
# DDP scaling, dtrain vs PyTorch DDP (gloo): the reference GPT at 16 sequences per rank and one
# thread per rank, as one process without DDP (the baseline), DDP on 1 rank and DDP on 2 ranks.
# Scaling efficiency = baseline ms/step / 2-rank ms/step (same per-rank batch: ideal is 1.00),
# from the median step (median over rounds of each run's median) and from the fastest step of all
# rounds (on a machine shared with other work, the one least disturbed by it). CPU efficiency =
# baseline CPU ms/step / one rank's CPU ms/step at 2 ranks, every thread of the process counted:
# the work DDP adds, whatever the machine's load. Within a round the two libraries take turns at
# going first, so a burst of load from elsewhere hits both.
#
#   bench/ddp_scaling.sh [build-dir]      # default build-dir: build; ROUNDS=3, STEPS=10
#
# Needs bench_ddp_scaling built in build-dir (an MPI build), mpirun, and Debian's python3-torch.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build}
rounds=${ROUNDS:-3}
steps=${STEPS:-10}
dtrain_bench=$build/bench/bench_ddp_scaling
torch_bench=$repo/bench/ddp_scaling_torch.py
if [[ ! -x $dtrain_bench ]]; then
  echo "ddp_scaling.sh: $dtrain_bench not found (cmake --build $build --target bench_ddp_scaling)" >&2
  exit 2
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT

# One thread per rank in every pool either library might use; no core binding (the ranks and
# their communication threads share the cores as the scheduler sees fit).
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1
     -x MKL_NUM_THREADS=1)
run() {  # library mode ranks
  local library=$1 mode=$2 ranks=$3
  local -a program
  if [[ $library == dtrain ]]; then program=("$dtrain_bench"); else program=(/usr/bin/python3 "$torch_bench"); fi
  if [[ $mode == plain ]]; then
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "${program[@]}" --no-ddp --steps "$steps"
  else
    "${mpi[@]}" -np "$ranks" "${program[@]}" --steps "$steps"
  fi
}

echo "load before: $(uptime | sed 's/.*load average/load average/')" >&2
for ((round = 0; round < rounds; ++round)); do
  for configuration in "plain 1" "ddp 1" "ddp 2"; do
    if ((round % 2 == 0)); then order="dtrain pytorch"; else order="pytorch dtrain"; fi
    for library in $order; do
      # shellcheck disable=SC2086  # configuration is "mode ranks"
      run "$library" $configuration | tee -a "$results" >&2
    done
  done
done
echo "load after: $(uptime | sed 's/.*load average/load average/')" >&2

awk '
  function minimum(list,    values, n, i, least) {
    n = split(list, values, " ")
    least = values[1]
    for (i = 2; i <= n; ++i) if (values[i] + 0 < least + 0) least = values[i]
    return least
  }
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
    key = field["library"] SUBSEP field["mode"] SUBSEP field["ranks"]
    for (name in field) if (name ~ /_ms$/) times[key, name] = times[key, name] " " field[name]
  }
  END {
    split("dtrain pytorch", libraries, " ")
    printf "| library | 1 process, no DDP | DDP, 1 rank | DDP, 2 ranks | scaling efficiency | CPU ms/step per rank: 1 process / 2 ranks | CPU efficiency |\n"
    printf "|---|---|---|---|---|---|---|\n"
    for (l = 1; l <= 2; ++l) {
      library = libraries[l]
      for (kind = 1; kind <= 2; ++kind) {
        statistic = kind == 1 ? "median_ms" : "best_ms"
        if (kind == 1) {
          plain = median(times[library, "plain", 1, statistic])
          one = median(times[library, "ddp", 1, statistic])
          two = median(times[library, "ddp", 2, statistic])
        } else {
          plain = minimum(times[library, "plain", 1, statistic])
          one = minimum(times[library, "ddp", 1, statistic])
          two = minimum(times[library, "ddp", 2, statistic])
        }
        if (kind == 1) step[library] = two; else best[library] = two
        plain_cpu = median(times[library, "plain", 1, "cpu_ms"]); two_cpu = median(times[library, "ddp", 2, "cpu_ms"])
        printf "| %s, %s step | %.1f ms | %.1f ms | %.1f ms | %.2f | %.1f / %.1f | %.2f |\n", library,
               kind == 1 ? "median" : "fastest", plain, one, two, plain / two, plain_cpu, two_cpu, plain_cpu / two_cpu
      }
    }
    printf "\nDDP step time at 2 ranks, dtrain / pytorch: %.2f (median), %.2f (fastest)\n", step["dtrain"] / step["pytorch"],
           best["dtrain"] / best["pytorch"]
    printf "\nPhases at 2 ranks, median ms on rank 0 (dtrain / pytorch); backward includes waiting for the all-reduces:\n\n"
    printf "| forward | backward | optimizer |\n|---|---|---|\n"
    split("forward_ms backward_ms optimizer_ms", phases, " ")
    for (i = 1; i <= 3; ++i) {
      printf "| %.1f / %.1f ", median(times["dtrain", "ddp", 2, phases[i]]), median(times["pytorch", "ddp", 2, phases[i]])
    }
    printf "|\n"
  }' "$results"
