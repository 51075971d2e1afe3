#!/bin/sh
# run-sim-cluster.sh: runs an MPI program on simulated hosts — network namespaces with their own
# addresses and hostnames, MPI over TCP between them (../shared/tools/sim-cluster) — and tears
# them down afterwards, whether the program passed, failed or was interrupted.
#
#   run-sim-cluster.sh HOSTS SLOTS NP PROGRAM [ARGS...]
#     HOSTS  simulated hosts (simnode1 .. simnodeHOSTS)     SLOTS  ranks per host
#     NP     ranks in all (mpirun -np)                      PROGRAM ARGS  what every rank runs
#   environment: SIM_CLUSTER  the sim-cluster tool (default ../shared/tools/sim-cluster beside the repo)
#                MPIEXEC      mpirun (default: mpirun)
#                DTRAIN_*, OMP_NUM_THREADS: passed on to the ranks
#
# Exit status: the program's; 77 (CTest's SKIP_RETURN_CODE), after a line "SKIPPED: ...", only
# when network namespaces cannot be made here (not root, no CAP_NET_ADMIN) or the tool is absent.
# One simulated cluster at a time per machine (the tool's names are fixed): a lock serialises
# concurrent runs.
set -u

if [ $# -lt 4 ]; then
  sed -n '2,17p' "$0"
  exit 2
fi
hosts=$1 slots=$2 np=$3
shift 3

here=$(cd "$(dirname "$0")" && pwd)
sim_cluster=${SIM_CLUSTER:-$here/../../../shared/tools/sim-cluster}
mpiexec=${MPIEXEC:-mpirun}

skip() {
  echo "SKIPPED: $*"
  exit 77
}

[ -f "$sim_cluster" ] || skip "the sim-cluster tool is not at $sim_cluster (it lives in shared/tools beside the repository)"
[ "$(id -u)" -eq 0 ] || skip "simulated hosts need root (network namespaces), running as uid $(id -u)"
command -v ip > /dev/null 2>&1 || skip "the ip command (iproute2) is missing"
probe=dtrain-probe-$$
ip netns add "$probe" > /dev/null 2>&1 || skip "network namespaces cannot be created here (ip netns add failed)"
ip netns del "$probe"

# The tool uses fixed names (simbr0, simnode*, /tmp/sim-cluster): one cluster at a time.
exec 9> /tmp/dtrain-sim-cluster.lock
if ! flock -w 900 9; then
  echo "run-sim-cluster: another simulated cluster held the lock for 15 minutes; giving up" >&2
  exit 1
fi

down() { sh "$sim_cluster" down > /dev/null 2>&1 || true; }
# Leftovers of a run that was killed before it could clean up (under the lock: not someone else's).
down
trap down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! sh "$sim_cluster" up "$hosts" "$slots"; then
  echo "run-sim-cluster: 'sim-cluster up $hosts $slots' failed" >&2
  exit 1
fi

# The ranks get dtrain's and OpenMP's settings from this environment.
exports=""
for variable in $(env | sed -n 's/^\(DTRAIN_[A-Za-z0-9_]*\)=.*/\1/p; s/^\(OMP_NUM_THREADS\)=.*/\1/p'); do
  exports="$exports -x $variable"
done

echo "run-sim-cluster: $hosts hosts x $slots slots: $mpiexec $(sh "$sim_cluster" args) --oversubscribe --bind-to none --tag-output$exports -np $np $*"
# shellcheck disable=SC2046,SC2086  # the tool's arguments and the exports are meant to split
"$mpiexec" $(sh "$sim_cluster" args) --oversubscribe --bind-to none --tag-output $exports -np "$np" "$@"
status=$?
exit $status  # the EXIT trap tears the hosts down
