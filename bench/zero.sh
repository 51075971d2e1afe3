#!/bin/bash
# ZeRO, dtrain vs PyTorch: step time and per-rank memory of dist::ZeroOptimizer stages 0-3 next to
# dtrain's DistributedDataParallel and, in the same run, PyTorch DDP and PyTorch's
# ZeroRedundancyOptimizer (stage 1; gloo), at 2 and 4 ranks, one thread per rank; then the model
# state in bf16 mixed precision; then the largest model each stage trains under a per-rank memory
# cap.
#
#   bench/zero.sh [build-dir]      # default build-dir: build
#
# Settings (environment): ROUNDS=3 STEPS=5 WARMUP=2 RANKS="2 4" — the timed part (ROUNDS=0: none):
# every configuration runs once per round, in an order that reverses every round, so a burst of
# load from elsewhere hits all of them; a cell is the median over rounds of each run's median step
# (a step's time is its slowest rank's), "fastest" the fastest step of all rounds.
# MODEL="--d-model 512 --layers 8 --heads 8 --context 64 --batch 4" (25.4M parameters).
# BF16=1: stages 0-3 once more with bf16 compute (memory; 1 warm-up and 1 timed step).
# FIT=1 CAP_MB=512 FIT_RANKS=4 FIT_MODEL="--d-model 512 --heads 8 --context 64 --batch 1"
# FIT_MODES="ddp 1 2 3" (add 0 for ZeroOptimizer's stage 0, which trains in DDP's memory): for
# each, the largest layer count whose training (2 steps) stays under CAP_MB per rank
# (bench_zero --memory-limit-mb: counted tensor bytes, from after the model and its wrapper are
# built), by bisection between 0 and the first layer count whose model state alone, by the
# paper's formula, exceeds the cap. FIT_SETUP=1: the cap holds from before the model is built
# (bench_zero --cap-setup), so the setup peak counts, and ZeRO builds the model by sharded
# construction (--sharded-construction; DDP cannot: it needs the whole model). The capacity
# target of bench/README.md:
#   ROUNDS=0 BF16=0 FIT_SETUP=1 CAP_MB=2048 FIT_MODES="ddp 3" bench/zero.sh
#
# Needs bench_zero built in build-dir (an MPI build), mpirun, and Debian's python3-torch (without
# it the PyTorch rows are left out, with a note).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build}
rounds=${ROUNDS:-3}
steps=${STEPS:-5}
warmup=${WARMUP:-2}
rank_counts=${RANKS:-2 4}
model=${MODEL:---d-model 512 --layers 8 --heads 8 --context 64 --batch 4}
bf16=${BF16:-1}
fit=${FIT:-1}
cap_mb=${CAP_MB:-512}
fit_ranks=${FIT_RANKS:-4}
fit_model=${FIT_MODEL:---d-model 512 --heads 8 --context 64 --batch 1}
fit_modes=${FIT_MODES:-ddp 1 2 3}
fit_setup=${FIT_SETUP:-0}
# The PyTorch side: Debian's python3-torch, or PYTHON=venv/bin/python for a torch from PyPI.
python=${PYTHON:-/usr/bin/python3}
dtrain_bench=$build/bench/bench_zero
torch_bench=$repo/bench/zero_torch.py
if [[ ! -x $dtrain_bench ]]; then
  echo "zero.sh: $dtrain_bench not found (cmake --build $build --target bench_zero)" >&2
  exit 2
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT

# One thread per rank in every pool either library might use; no core binding (4 ranks share 2
# cores). PyTorch's libgomp waits passively (bench/README.md, training step: its spinning wait
# fights OpenBLAS's threads).
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1
     -x MKL_NUM_THREADS=1 -x OMP_WAIT_POLICY=passive -x OMPI_MCA_btl_vader_single_copy_mechanism=none)
run() {  # ranks configuration: "dtrain ddp" | "dtrain 0".."dtrain 3" | "pytorch ddp" | "pytorch zero1"
  local ranks=$1 library=$2 mode=$3
  # shellcheck disable=SC2086  # model is a list of flags
  if [[ $library == pytorch ]]; then
    "${mpi[@]}" -np "$ranks" "$python" "$torch_bench" --mode "$mode" --steps "$steps" --warmup "$warmup" $model
  elif [[ $mode == ddp ]]; then
    "${mpi[@]}" -np "$ranks" "$dtrain_bench" --ddp --steps "$steps" --warmup "$warmup" $model
  else
    "${mpi[@]}" -np "$ranks" "$dtrain_bench" --stage "$mode" --steps "$steps" --warmup "$warmup" $model
  fi
}

load() { uptime | sed 's/.*load average/load average/'; }
echo "load before: $(load)" >&2
configurations=("dtrain ddp" "dtrain 0" "dtrain 1" "dtrain 2" "dtrain 3")
if "$python" -c 'import torch' 2>/dev/null; then
  configurations+=("pytorch ddp" "pytorch zero1")
else
  echo "zero.sh: $python cannot import torch: the PyTorch rows are left out (PYTHON=<a venv's python> picks another)" >&2
fi
for ((round = 0; round < rounds; ++round)); do
  for ranks in $rank_counts; do
    order=("${configurations[@]}")
    if ((round % 2 == 1)); then
      order=(); for ((i = ${#configurations[@]} - 1; i >= 0; --i)); do order+=("${configurations[i]}"); done
    fi
    for configuration in "${order[@]}"; do
      # shellcheck disable=SC2086  # configuration is "library mode"
      run "$ranks" $configuration | grep '^library=' | sed 's/^/timed /' | tee -a "$results" >&2
    done
  done
done
echo "load after the timed part: $(load)" >&2

if ((bf16)); then
  for ranks in $rank_counts; do
    for stage in 0 1 2 3; do
      # shellcheck disable=SC2086
      "${mpi[@]}" -np "$ranks" "$dtrain_bench" --stage "$stage" --compute bf16 --steps 1 --warmup 1 $model |
        grep '^library=' | sed 's/^/bf16 /' | tee -a "$results" >&2
    done
  done
  echo "load after bf16: $(load)" >&2
fi

# The fit search. Ψ(L) of the benchmark GPT: embeddings (256 + context) d, L blocks of 12d² + 13d,
# final norm 2d.
flag() {  # flag-name flags... -> its value
  local name=$1; shift
  while (($#)); do if [[ $1 == "$name" ]]; then echo "$2"; return; fi; shift; done
}
if ((fit)); then
  # shellcheck disable=SC2086
  d=$(flag --d-model $fit_model)
  # shellcheck disable=SC2086
  context=$(flag --context $fit_model)
  cap_bytes=$((cap_mb * 1024 * 1024))
  parameters() { echo $(((256 + context) * d + $1 * (12 * d * d + 13 * d) + 2 * d)); }
  formula_bytes() {  # mode layers -> the paper's fp32 Adam model state per rank
    local psi; psi=$(parameters "$2")
    case $1 in
      ddp | 0) echo $((16 * psi)) ;;
      1) echo $((8 * psi + 8 * psi / fit_ranks)) ;;
      2) echo $((4 * psi + 12 * psi / fit_ranks)) ;;
      3) echo $((16 * psi / fit_ranks)) ;;
    esac
  }
  try_layers() {  # mode layers -> 0 when it fits; appends its line to the results
    local mode=$1 layers=$2 line status=0 selector
    if [[ $mode == ddp ]]; then selector=(--ddp); else selector=(--stage "$mode"); fi
    if ((fit_setup)); then
      selector+=(--cap-setup)
      [[ $mode == ddp ]] || selector+=(--sharded-construction)
    fi
    # shellcheck disable=SC2086
    line=$(timeout 600 "${mpi[@]}" -np "$fit_ranks" "$dtrain_bench" "${selector[@]}" --layers "$layers" --warmup 0 \
             --steps 2 --memory-limit-mb "$cap_mb" $fit_model 2>/dev/null | grep '^library=' | head -1) || status=$?
    if [[ -z $line ]]; then
      echo "zero.sh: the fit run $mode, $layers layers printed nothing (status $status); stopping" >&2
      exit 2
    fi
    echo "fit $line" | tee -a "$results" >&2
    [[ $line == *fits=1* ]]
  }
  for mode in $fit_modes; do
    low=0 high=1
    while (($(formula_bytes "$mode" "$high") <= cap_bytes)); do high=$((high + 1)); done
    while ((high - low > 1)); do
      middle=$(((low + high) / 2))
      if try_layers "$mode" "$middle"; then low=$middle; else high=$middle; fi
    done
    echo "fitresult mode=$mode layers=$low params=$(parameters "$low") ranks=$fit_ranks cap_mb=$cap_mb cap_setup=$fit_setup" |
      tee -a "$results" >&2
  done
  echo "load after the fit search: $(load)" >&2
fi

awk -v rank_counts="$rank_counts" '
  function median(list,    values, n, i, j, t) {
    n = split(list, values, " ")
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && values[j - 1] + 0 > values[j] + 0; --j) {
      t = values[j]; values[j] = values[j - 1]; values[j - 1] = t
    }
    return n % 2 ? values[(n + 1) / 2] : (values[n / 2] + values[n / 2 + 1]) / 2
  }
  function minimum(list,    values, n, i, least) {
    n = split(list, values, " ")
    least = values[1]
    for (i = 2; i <= n; ++i) if (values[i] + 0 < least + 0) least = values[i]
    return least
  }
  function mib(bytes) { return sprintf("%.1f", bytes / 1048576) }
  function name(library, mode) {
    if (library == "pytorch") return mode == "ddp" ? "PyTorch DDP" : "PyTorch ZeroRedundancyOptimizer (stage 1)"
    return mode == "-1" ? "dtrain DDP" : "dtrain ZeRO stage " mode
  }
  {
    kind = $1
    delete field
    for (i = 2; i <= NF; ++i) { split($i, kv, "="); field[kv[1]] = kv[2] }
    if (match($0, /error="[^"]*"/)) field["error"] = substr($0, RSTART + 7, RLENGTH - 8)
    mode = field["library"] == "dtrain" && field["mode"] == "zero" ? field["stage"] : field["mode"]
    if (field["library"] == "dtrain" && field["mode"] == "ddp") mode = "-1"
    if (kind == "timed") {
      key = field["ranks"] SUBSEP field["library"] SUBSEP mode
      for (f in field) if (f ~ /_ms$|_bytes$|_mb$|cores_busy|formula_ok/) values[key, f] = values[key, f] " " field[f]
      params = field["params"]
    } else if (kind == "bf16") {
      bf16[field["ranks"], field["stage"]] = $0
      for (f in field) bf16v[field["ranks"], field["stage"], f] = field[f]
    } else if (kind == "fitresult") {
      fits[++fitcount] = $0
      for (f in field) fitv[fitcount, f] = field[f]
    }
    if (kind == "fit") {
      fitkey = (field["mode"] == "ddp" ? "ddp" : field["stage"]) SUBSEP field["layers"]
      fitrun[fitkey] = $0
      for (f in field) fitrunv[fitkey, f] = field[f]
    }
  }
  END {
    split(rank_counts, ranks_list, " ")
    split("dtrain:-1 dtrain:0 dtrain:1 dtrain:2 dtrain:3 pytorch:ddp pytorch:zero1", rows, " ")
    if (params != "") {
    printf "Step time, %d parameters; ms per step (median over rounds of each run'"'"'s median; a step is its slowest rank'"'"'s)\n\n", params
    printf "| ranks | configuration | median ms | fastest ms | / dtrain DDP | / dtrain ZeRO-0 | forward | backward | optimizer | cores busy |\n"
    printf "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (r = 1; r in ranks_list; ++r) {
      n = ranks_list[r]
      ddp = median(values[n, "dtrain", "-1", "median_ms"]); zero0 = median(values[n, "dtrain", "0", "median_ms"])
      for (i = 1; i in rows; ++i) {
        split(rows[i], lm, ":"); key = n SUBSEP lm[1] SUBSEP lm[2]
        if (values[key, "median_ms"] == "") continue
        m = median(values[key, "median_ms"])
        printf "| %d | %s | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f | %.1f | %.2f |\n", n, name(lm[1], lm[2]), m,
               minimum(values[key, "best_ms"]), m / ddp, m / zero0, median(values[key, "forward_ms"]),
               median(values[key, "backward_ms"]), median(values[key, "optimizer_ms"]), median(values[key, "cores_busy"])
      }
    }
    printf "\nPer-rank memory, fp32 (MiB; the maximum over ranks; Ψ = %d)\n\n", params
    printf "| ranks | configuration | model state held | formula | held / Ψ (bytes) | padding | formula exact | peak during training | setup peak | max RSS |\n"
    printf "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|\n"
    for (r = 1; r in ranks_list; ++r) {
      n = ranks_list[r]
      for (i = 1; i in rows; ++i) {
        split(rows[i], lm, ":"); key = n SUBSEP lm[1] SUBSEP lm[2]
        if (values[key, "median_ms"] == "") continue
        held = median(values[key, "model_state_bytes"])
        if (lm[1] == "dtrain") {
          printf "| %d | %s | %s | %s | %.2f | %d B | %s | %s | %s | %s |\n", n, name(lm[1], lm[2]), mib(held),
                 mib(median(values[key, "formula_bytes"])), held / params, median(values[key, "padding_bytes"]),
                 minimum(values[key, "formula_ok"]) == 1 ? "yes" : "no", mib(median(values[key, "peak_bytes"])),
                 mib(median(values[key, "setup_peak_bytes"])), median(values[key, "max_rss_mb"])
        } else {
          printf "| %d | %s | %s | | %.2f | | | | | %s |\n", n, name(lm[1], lm[2]), mib(held), held / params,
                 median(values[key, "max_rss_mb"])
        }
      }
    }
    }
    printed = 0
    for (r = 1; r in ranks_list; ++r) for (s = 0; s <= 3; ++s) {
      n = ranks_list[r]
      if (!((n, s) in bf16)) continue
      if (!printed) {
        printf "\nPer-rank model state, bf16 compute with fp32 masters (MiB; the rank holding the most)\n\n"
        printf "| ranks | stage | model state held | formula | held / Ψ (bytes) | padding | formula exact | peak during training | ms per step (1 step) |\n"
        printf "|---:|---:|---:|---:|---:|---:|---|---:|---:|\n"
        printed = 1
      }
      printf "| %d | %d | %s | %s | %.2f | %d B | %s | %s | %.0f |\n", n, s, mib(bf16v[n, s, "model_state_bytes"]),
             mib(bf16v[n, s, "formula_bytes"]), bf16v[n, s, "model_state_bytes"] / bf16v[n, s, "params"],
             bf16v[n, s, "padding_bytes"], bf16v[n, s, "formula_ok"] == 1 ? "yes" : "no", mib(bf16v[n, s, "peak_bytes"]),
             bf16v[n, s, "median_ms"]
    }
    if (fitcount > 0) {
      printf "\nLargest model under a cap of %s MiB per rank at %s ranks (%s)\n\n", fitv[1, "cap_mb"], fitv[1, "ranks"],
             fitv[1, "cap_setup"] == 1 ? "cap from before construction; ZeRO by sharded construction" : "cap from after construction"
      printf "| configuration | layers | Ψ | / DDP | peak during training | setup peak%s | first layer count that did not fit: what failed |\n",
             fitv[1, "cap_setup"] == 1 ? " (bound)" : " (uncapped)"
      printf "|---|---:|---:|---:|---:|---:|---|\n"
      for (i = 1; i <= fitcount; ++i) {
        m = fitv[i, "mode"]; layers = fitv[i, "layers"]
        if (m == "ddp") base = fitv[i, "params"]
        k = m SUBSEP layers; k2 = m SUBSEP (layers + 1)
        failure = (k2 in fitrun) ? fitrunv[k2, "error"] : "(not run: its model state alone exceeds the cap by the formula)"
        if ((k2 in fitrun) && fitrunv[k2, "fits"] == 1) failure = "(fits: search bound)"
        printf "| %s | %d | %d | %.2f | %s | %s | %d layers: %s |\n", name("dtrain", m == "ddp" ? "-1" : m), layers,
               fitv[i, "params"], fitv[i, "params"] / base, (k in fitrun) ? mib(fitrunv[k, "peak_bytes"]) : "-",
               (k in fitrun) ? mib(fitrunv[k, "setup_peak_bytes"]) ((fitrunv[k, "setup_bound_bytes"] > 0) ? " (" mib(fitrunv[k, "setup_bound_bytes"]) ")" : "") : "-",
               layers + 1, failure
      }
    }
  }' "$results"
