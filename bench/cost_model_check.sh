#!/bin/bash
# The cost model (dtrain-cost-model, docs/scaling.md) against measurements on simulated hosts:
# for each link rate and host count (1 rank per host), the all-reduce times of bench_collectives
# (dtrain's all_reduce, 1 KiB to MAX_MIB MiB) and the step time of the gpt example with DDP and
# ZeRO 1/2/3; then α and β fitted per rate (least squares over the sizes from FIT_MIN_KIB KiB and
# every host count, of the ring formula 2(N-1)α + 2(N-1)/N nβ, α kept >= 0: below the token
# bucket's 64 KB burst a simulated link passes a message at full speed, so the small sizes follow
# no α-β line), the compute of a step measured just before each cluster with N copies of the
# example running alone at once (the simulated hosts share this machine's cores, and the machine
# is shared), and dtrain-cost-model's prediction of each step beside the measurement — with the
# rate's α and β, and with α and β fitted to that host count's all-reduces alone (which separates
# the collective model's error from the step model's). docs/scaling.md shows one run.
#
#   bench/cost_model_check.sh [build-dir]      # default build-dir: build
#
# Settings (environment): RATES="200mbit 1gbit" HOSTS="2 3 4" STEPS=10 (the step time is the
# mean of the last STEPS/2) MODEL="--d-model 256 --layers 4 --heads 4 --context 64 --batch 4"
# MODES="0 1 2 3" (--zero-stage; 0 is DDP) CALLS=3 (timed calls per size) MAX_MIB=16 FIT_MIN_KIB=64
# OVERLAP=1 (dtrain-cost-model --overlap) MPI_ARGS="" (more mpirun arguments, e.g. the ring
# all-reduce that the model assumes: "-x OMPI_MCA_coll_tuned_use_dynamic_rules=1
# -x OMPI_MCA_coll_tuned_allreduce_algorithm=4") RESULTS=dir (keep the raw outputs there; default: a
# temporary folder, removed). SIM_CLUSTER: the sim-cluster tool (default ../shared/tools beside
# the repository). Needs root (network namespaces), mpirun, python3, and bench_collectives, gpt
# and dtrain-cost-model built in build-dir. Holds /tmp/dtrain-sim-cluster.lock while a simulated
# cluster is up (one at a time on a machine), and takes it down whatever happens.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build}
rates=${RATES:-200mbit 1gbit}
host_counts=${HOSTS:-2 3 4}
steps=${STEPS:-10}
model=${MODEL:---d-model 256 --layers 4 --heads 4 --context 64 --batch 4}
modes=${MODES:-0 1 2 3}
calls=${CALLS:-3}
max_mib=${MAX_MIB:-16}
fit_min_kib=${FIT_MIN_KIB:-64}
overlap=${OVERLAP:-1}
sim_cluster=${SIM_CLUSTER:-$repo/../shared/tools/sim-cluster}
for program in bench/bench_collectives gpt dtrain-cost-model; do
  if [[ ! -x $build/$program ]]; then
    echo "cost_model_check.sh: $build/$program not found (cmake --build $build --target $(basename $program))" >&2
    exit 2
  fi
done
[[ -f $sim_cluster ]] || { echo "cost_model_check.sh: no sim-cluster tool at $sim_cluster (SIM_CLUSTER=...)" >&2; exit 2; }
if [[ -n ${RESULTS:-} ]]; then
  results=$RESULTS
  mkdir -p "$results"
else
  results=$(mktemp -d)
  trap 'rm -rf "$results"' EXIT
fi

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
half=$((steps / 2))
gpt_flags=($model --threads 1 --steps "$steps" --log-every "$half" --eval-every 1000000 --eval-batches 1 --sample-bytes 0)

# One simulated cluster of `hosts` hosts at `rate`: the collectives, then each mode's steps.
measure_cluster() {
  local rate=$1 hosts=$2
  (
    flock -w 1800 9 || { echo "cost_model_check.sh: the sim-cluster lock stayed taken" >&2; exit 1; }
    down() { sh "$sim_cluster" down > /dev/null 2>&1 || true; }
    down
    trap down EXIT
    SIM_CLUSTER_RATE=$rate sh "$sim_cluster" up "$hosts" 1
    # shellcheck disable=SC2046  # the tool's arguments are meant to split
    # shellcheck disable=SC2206  # MPI_ARGS is meant to split
    local mpi=(mpirun $(sh "$sim_cluster" args) --oversubscribe --bind-to none -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS
               ${MPI_ARGS:-} -np "$hosts")
    "${mpi[@]}" "$build/bench/bench_collectives" --max-mib "$max_mib" --rounds 1 --calls "$calls" \
      > "$results/collectives-$rate-$hosts.txt"
    for mode in $modes; do
      rm -f "$results/step-$rate-$hosts-$mode.jsonl"
      "${mpi[@]}" "$build/gpt" "${gpt_flags[@]}" --zero-stage "$mode" --metrics "$results/step-$rate-$hosts-$mode.jsonl" \
        > "$results/step-$rate-$hosts-$mode.log" 2>&1 || echo "(gpt --zero-stage $mode failed at $rate, $hosts hosts: see the log)" >&2
    done
  ) 9> /tmp/dtrain-sim-cluster.lock
}

# The compute of a step with n processes sharing the machine: n single-process runs at once.
measure_compute() {
  local tag=$1 n=$2 pids=() i
  for ((i = 0; i < n; ++i)); do
    rm -f "$results/compute-$tag-$i.jsonl"
    "$build/gpt" "${gpt_flags[@]}" --metrics "$results/compute-$tag-$i.jsonl" > /dev/null 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

for rate in $rates; do
  for hosts in $host_counts; do
    echo "measuring $rate, $hosts hosts: the compute alone, then the cluster" >&2
    measure_compute "$rate-$hosts" "$hosts"
    measure_cluster "$rate" "$hosts"
  done
done

python3 - "$results" "$build/dtrain-cost-model" "$overlap" "$rates" "$host_counts" "$modes" "$model" "$fit_min_kib" <<'PYTHON'
import json, math, re, subprocess, sys

results, tool, overlap, rates, host_counts, modes, model, fit_min_kib = sys.argv[1:9]
rates, host_counts, modes = rates.split(), [int(h) for h in host_counts.split()], [int(m) for m in modes.split()]
model_flags = model.split()
def flag(name, default):
    return int(model_flags[model_flags.index(name) + 1]) if name in model_flags else default
batch, context = flag("--batch", 16), flag("--context", 128)
shape = ["--d-model", str(flag("--d-model", 256)), "--layers", str(flag("--layers", 4)),
         "--context", str(context), "--vocabulary", "256"]

def last_step_seconds(path, ranks):
    """Mean seconds per step of the last metrics record: its step_s, or from its throughput."""
    records = [json.loads(line) for line in open(path) if '"loss"' in line]
    last = records[-1]
    if "step_s" in last:
        return last["step_s"]
    return batch * ranks * context / last["tokens_per_s"]

def all_reduce_times(path):
    """(bytes, seconds) of dtrain's all_reduce (median) by size."""
    times = []
    for line in open(path):
        match = re.match(r"\| (\d+) (KiB|MiB) \|((?: [^|]+ \|){6})", line)
        if match:
            size = int(match.group(1)) * (1024 if match.group(2) == "KiB" else 1024 * 1024)
            cells = [c.strip() for c in match.group(3).split("|") if c.strip()]
            times.append((size, float(cells[4]) * 1e-6))
    return times

def fit(samples):
    """α >= 0, β of least squares of t = 2(N-1)α + 2(N-1)/N nβ over (N, n, t)."""
    a11 = a12 = a22 = b1 = b2 = 0.0
    for n_ranks, size, seconds in samples:
        x1, x2 = 2 * (n_ranks - 1), 2 * (n_ranks - 1) / n_ranks * size
        a11, a12, a22, b1, b2 = a11 + x1 * x1, a12 + x1 * x2, a22 + x2 * x2, b1 + x1 * seconds, b2 + x2 * seconds
    determinant = a11 * a22 - a12 * a12
    alpha, beta = (b1 * a22 - b2 * a12) / determinant, (a11 * b2 - a12 * b1) / determinant
    if alpha < 0:
        alpha, beta = 0.0, b2 / a22
    return alpha, beta

def compute_seconds(rate, hosts):
    per_process = []
    for i in range(hosts):
        try:
            per_process.append(last_step_seconds(f"{results}/compute-{rate}-{hosts}-{i}.jsonl", 1))
        except (OSError, IndexError):
            pass
    return sum(per_process) / len(per_process)

mode_names = {0: "ddp", 1: "zero1", 2: "zero2", 3: "zero3"}
for rate in rates:
    samples = []
    for hosts in host_counts:
        samples += [(hosts, size, seconds) for size, seconds in all_reduce_times(f"{results}/collectives-{rate}-{hosts}.txt")]
    alpha, beta = fit([sample for sample in samples if sample[1] >= int(fit_min_kib) * 1024])
    print(f"## {rate}: fitted alpha {alpha * 1e6:.0f} us, beta {beta * 1e9:.2f} ns/byte ({8 / beta / 1e6:.0f} Mbit/s)\n")
    print("| all-reduce | " + " | ".join(f"N={h} measured ms | model ms" for h in host_counts) + " |")
    print("| ---: |" + " ---: | ---: |" * len(host_counts))
    by_size = {}
    for n_ranks, size, seconds in samples:
        by_size.setdefault(size, {})[n_ranks] = seconds
    worst = 0.0
    for size in sorted(by_size):
        cells = []
        for hosts in host_counts:
            measured = by_size[size].get(hosts)
            model_seconds = 2 * (hosts - 1) * alpha + 2 * (hosts - 1) / hosts * size * beta
            cells.append(f"{measured * 1e3:.2f} | {model_seconds * 1e3:.2f}" if measured else "- | -")
            if measured and size >= int(fit_min_kib) * 1024:
                worst = max(worst, abs(model_seconds / measured - 1))
        label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\nlargest all-reduce error from {fit_min_kib} KiB: {worst * 100:.0f}%\n")
    print(f"| step, {rate} | N | compute ms | measured ms | predicted ms | predicted / measured "
          f"| with this N's own alpha, beta: predicted ms | predicted / measured |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    within = total = 0
    for hosts in host_counts:
        compute = compute_seconds(rate, hosts)
        own_alpha, own_beta = fit([s for s in samples if s[0] == hosts and s[1] >= int(fit_min_kib) * 1024])
        def predict(alpha_seconds, beta_seconds):
            methods = ",".join(mode_names[m] for m in modes)
            output = subprocess.run([tool, "--ranks", str(hosts), "--alpha-us", str(alpha_seconds * 1e6), "--beta",
                                     str(beta_seconds), "--compute-ms", str(compute * 1e3), "--overlap", overlap,
                                     "--methods", methods] + shape, check=True, capture_output=True, text=True).stdout
            predicted = {}
            for line in output.splitlines():
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if len(cells) == 8 and cells[0] in mode_names.values():
                    predicted[cells[0]] = float(cells[6]) * 1e-3
            return predicted
        predicted, own = predict(alpha, beta), predict(own_alpha, own_beta)
        for mode in modes:
            name = mode_names[mode]
            try:
                measured = last_step_seconds(f"{results}/step-{rate}-{hosts}-{mode}.jsonl", hosts)
            except (OSError, IndexError):
                print(f"| {name} | {hosts} | {compute * 1e3:.0f} | (no run) | {predicted[name] * 1e3:.0f} | - "
                      f"| {own[name] * 1e3:.0f} | - |")
                continue
            total += 1
            within += abs(predicted[name] / measured - 1) <= 0.25
            print(f"| {name} | {hosts} | {compute * 1e3:.0f} | {measured * 1e3:.0f} | {predicted[name] * 1e3:.0f} | "
                  f"{predicted[name] / measured:.2f} | {own[name] * 1e3:.0f} | {own[name] / measured:.2f} |")
    print(f"\n{within} of {total} steps predicted within 25% (overlap {overlap}; alpha, beta of the rate's fit)\n")
PYTHON
