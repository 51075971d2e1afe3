#!/bin/sh
# run-checkpoint-crash.sh: checkpoints survive crashes. The gpt example saves, and is killed:
#   sharded  under mpirun -np NP with ZeRO stage 2: a complete save is traced (every file
#            operation, core/crash_test_switch.h) to learn its operations, its order is checked
#            (rank 0 renames index.json after every shard is on disk and removes files only after
#            that), then for every k from 1 to the operation count + 1 a saving job is killed with
#            SIGKILL right after operation k (DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION) on
#            each rank that performs it. After each kill the directory must load (dtrain-consolidate
#            --verify checks every checksum), holding the previous step when k is before the
#            index's rename and the new step from the rename on. A last clean save must leave
#            exactly index.json and its shards: everything the crashes left is removed.
#   single   the same for a single-file checkpoint (one process): the previous file or the new,
#            whole, and no temporary left once the next save ran.
#   kill     one rank of a training job under mpirun SIGKILLed mid-step: the whole job must end
#            within 15 s.
#   random   a job saving every step (ZeRO stage 2) SIGKILLed (a random rank; alternately at a
#            random moment after its first save and as soon as a save's temporary file shows)
#            ITERATIONS times in a row, each resuming from the last: every time the directory must
#            load, at a step no earlier than before.
#
#   run-checkpoint-crash.sh sharded|single|kill|random NP GPT CONSOLIDATE [ITERATIONS]
#   environment: MPIEXEC (default mpirun); the ranks run one OpenMP thread each
set -u
if [ $# -lt 4 ]; then
  sed -n '2,22p' "$0"
  exit 2
fi
mode=$1 np=$2 gpt=$3 consolidate=$4 iterations=${5:-5}
mpiexec=${MPIEXEC:-mpirun}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
model="--context 16 --d-model 16 --layers 1 --heads 2 --batch 4 --threads 1 --eval-every 100000 --sample-bytes 0"
limit=120  # seconds any one job may take: a job that hangs fails the test instead of CTest's timeout

fail() {
  echo "FAILED: $*"
  exit 1
}

# Runs the gpt example under mpirun; the exit code is left in $status, the output in $scratch/out.
mpi_gpt() {  # args...
  timeout "$limit" "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 \
    -x DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION -x DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS \
    -np "$np" "$gpt" $model "$@" > "$scratch/out" 2>&1
  status=$?
  [ "$status" -ne 124 ] || fail "mpirun -np $np gpt $* did not end within $limit s: $(cat "$scratch/out")"
}
plain_gpt() {  # args...
  OMP_NUM_THREADS=1 timeout "$limit" "$gpt" $model "$@" > "$scratch/out" 2>&1
  status=$?
  [ "$status" -ne 124 ] || fail "gpt $* did not end within $limit s: $(cat "$scratch/out")"
}
must_succeed() {  # what
  [ "$status" -eq 0 ] || fail "$1 exited $status: $(cat "$scratch/out")"
}

# The step of the sharded checkpoint in $1, after checking every checksum of every shard.
sharded_step() {
  "$consolidate" "$1" "$scratch/verified.safetensors" --all --verify > "$scratch/verify.out" 2>&1 ||
    fail "the checkpoint $1 does not load: $(cat "$scratch/verify.out")"
  sed -n 's/.* of step \([0-9]*\),.*/\1/p' "$scratch/verify.out"
}
# The step of the single-file checkpoint $1, as the example reports when it resumes from it.
single_step() {
  plain_gpt --steps 1000000 --stop-after 1 --resume "$1" > /dev/null
  grep -q "resumed from $1 at step" "$scratch/out" || fail "the checkpoint $1 does not load: $(cat "$scratch/out")"
  sed -n "s|^resumed from $1 at step \([0-9]*\).*|\1|p" "$scratch/out"
}

# Rank 0's operations from a trace: "<number> <kind> <path>" lines, in order.
operations_of_pid() {  # trace-file pid
  sed -n "s/^dtrain checkpoint operation \([0-9]*\) (pid $2): \([a-z]*\) '\(.*\)'$/\1 \2 \3/p" "$1"
}

# Kills with SIGKILL at every operation k = 1 .. count + 1 of a save from step $step to $step + 1;
# index_rename is the operation after which the new step must load. Uses save_and_kill <k>
# (leaves $status) and current_step.
kill_at_every_operation() {  # count index_rename
  count=$1 index_rename=$2 k=1 previous_kept=0 new_kept=0
  while [ "$k" -le $((count + 1)) ]; do
    if [ "$k" -gt "$count" ]; then
      # Earlier kills left files the next save removes (more operations): one clean save first,
      # so that this one has exactly the traced operations, and the switch lies past its last.
      save_and_kill 0
      must_succeed "the clean save before the kill point past the end"
      step=$((step + 1))
    fi
    start=$(date +%s)
    save_and_kill "$k"
    elapsed=$(($(date +%s) - start))
    if [ "$k" -le "$count" ]; then
      [ "$status" -ne 0 ] || fail "the save killed at operation $k of $count exited 0: $(cat "$scratch/out")"
    else
      must_succeed "the save with the switch past its last operation ($k)"
    fi
    loaded=$(current_step)
    if [ "$k" -ge "$index_rename" ]; then expected=$((step + 1)); else expected=$step; fi
    [ "$loaded" = "$expected" ] ||
      fail "killed after operation $k (of $count; the new checkpoint counts from $index_rename): step '$loaded' loads, expected $expected"
    if [ "$loaded" = "$step" ]; then previous_kept=$((previous_kept + 1)); else new_kept=$((new_kept + 1)); fi
    echo "kill after operation $k: exit $status in ${elapsed}s, step $loaded loads"
    step=$loaded
    k=$((k + 1))
  done
  echo "$mode: $((count + 1)) kill points (operations 1-$count and one past the end), all $((count + 1)) left a" \
       "loadable checkpoint: $previous_kept the previous step, $new_kept the new one"
}

case "$mode" in
sharded)
  ck=$scratch/ck
  DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION=0 DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS=0
  export DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS
  mpi_gpt --zero-stage 2 --steps 1 --checkpoint "$ck"
  must_succeed "the first save"
  [ "$(sharded_step "$ck")" = 1 ] || fail "the first save does not load at step 1"
  # A complete save from step 1 to 2, traced.
  DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS=1
  mpi_gpt --zero-stage 2 --steps 2 --resume "$ck" --checkpoint "$ck"
  must_succeed "the traced save"
  DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS=0
  cp "$scratch/out" "$scratch/trace"
  index_line=$(grep -m1 "rename '$ck/index.json'" "$scratch/trace") || fail "no rename of index.json in the trace"
  pid0=$(echo "$index_line" | sed -n 's/.*(pid \([0-9]*\)).*/\1/p')
  operations_of_pid "$scratch/trace" "$pid0" > "$scratch/rank0"
  count=$(wc -l < "$scratch/rank0")
  index_rename=$(awk '$2 == "rename" && $3 ~ /\/index\.json$/ { print $1 }' "$scratch/rank0")
  # The protocol, as dist/checkpoint/sharded_save.h states it: the shard (temporary created,
  # written, fsynced, renamed, directory fsynced), the index the same way, then removals only.
  expected_kinds="create write fsync rename fsync create write fsync rename fsync"
  kinds=$(awk 'NR <= 10 { printf "%s%s", (NR > 1 ? " " : ""), $2 }' "$scratch/rank0")
  [ "$kinds" = "$expected_kinds" ] || fail "rank 0's operations are '$kinds', expected '$expected_kinds'"
  [ "$index_rename" = 9 ] || fail "the index is renamed at operation '$index_rename', expected 9"
  awk 'NR > 10 && $2 != "remove" { bad = 1 } END { exit bad }' "$scratch/rank0" ||
    fail "after the index rank 0 may only remove files: $(cat "$scratch/rank0")"
  # Every rank: no removal before rank 0's index rename (a rank's own operations are in order,
  # and every removal names a file of the previous save).
  if grep "): remove" "$scratch/trace" | grep -v "(pid $pid0)" | grep -q .; then
    fail "a rank other than rank 0 removed files: $(grep '): remove' "$scratch/trace")"
  fi
  [ "$(grep -c "): remove" "$scratch/trace")" -eq "$np" ] ||
    fail "expected the $np shards of step 1 removed, got: $(grep '): remove' "$scratch/trace")"
  [ "$(sharded_step "$ck")" = 2 ] || fail "the traced save does not load at step 2"
  step=2
  save_and_kill() {
    DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION=$1
    mpi_gpt --zero-stage 2 --steps $((step + 1)) --resume "$ck" --checkpoint "$ck"
    DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION=0
  }
  current_step() { sharded_step "$ck"; }
  kill_at_every_operation "$count" "$index_rename"
  # One more save, uninterrupted: what the crashes left is gone.
  mpi_gpt --zero-stage 2 --steps $((step + 1)) --resume "$ck" --checkpoint "$ck"
  must_succeed "the last save"
  [ "$(sharded_step "$ck")" = $((step + 1)) ] || fail "the last save does not load"
  left=$(ls "$ck" | grep -v '^index\.json$' | grep -v "\.$(sed -n 's/.*"save_id":"\([0-9a-f]*\)".*/\1/p' "$ck/index.json")\.safetensors$")
  [ -z "$left" ] || fail "files left after the last save: $left"
  [ "$(ls "$ck" | wc -l)" -eq $((np + 1)) ] || fail "expected index.json and $np shards, got: $(ls "$ck")"
  echo "the last save left index.json and its $np shards only"
  ;;
single)
  ck=$scratch/ck.safetensors
  DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION=0 DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS=1
  export DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS
  plain_gpt --steps 1 --checkpoint "$ck"
  must_succeed "the first save"
  cp "$scratch/out" "$scratch/trace"
  DTRAIN_TEST_TRACE_CHECKPOINT_OPERATIONS=0
  kinds=$(sed -n "s/^dtrain checkpoint operation [0-9]* (pid [0-9]*): \([a-z]*\) .*/\1/p" "$scratch/trace" | tr '\n' ' ')
  [ "$kinds" = "create write fsync rename fsync " ] ||
    fail "the single-file save's operations are '$kinds', expected 'create write fsync rename fsync'"
  [ "$(single_step "$ck")" = 1 ] || fail "the first save does not load at step 1"
  step=1
  save_and_kill() {
    DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION=$1
    plain_gpt --steps $((step + 1)) --resume "$ck" --checkpoint "$ck"
    DTRAIN_TEST_CRASH_AFTER_CHECKPOINT_OPERATION=0
  }
  current_step() { single_step "$ck"; }
  kill_at_every_operation 5 4
  # A kill right after the temporary was created leaves it; the next save removes it.
  save_and_kill 1
  [ "$(ls "$scratch" | grep -c '^ck\.safetensors\.tmp\.[0-9]*$')" -eq 1 ] ||
    fail "expected the kill after operation 1 to leave a temporary, got: $(ls "$scratch")"
  plain_gpt --steps $((step + 1)) --resume "$ck" --checkpoint "$ck"
  must_succeed "the last save"
  left=$(ls "$scratch" | grep '^ck\.safetensors\.')
  [ -z "$left" ] || fail "temporaries left after the last save: $left"
  echo "the last save removed the temporaries the kills left"
  ;;
kill)
  "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np "$np" \
    "$gpt" $model --steps 100000000 --log-every 1 --metrics "$scratch/metrics" > "$scratch/out" 2>&1 &
  job=$!
  waited=0
  until [ -s "$scratch/metrics" ] && [ "$(wc -l < "$scratch/metrics")" -ge 3 ]; do
    sleep 0.2
    waited=$((waited + 1))
    [ "$waited" -lt 300 ] || { kill -9 "$job"; fail "the job did not start training within 60 s: $(cat "$scratch/out")"; }
  done
  ranks=$(pgrep -P "$job")
  [ "$(echo "$ranks" | wc -w)" -eq "$np" ] || { kill -9 "$job"; fail "expected $np ranks under mpirun, found: $ranks"; }
  victim=$(echo "$ranks" | tail -n 1)
  start=$(date +%s%N)
  kill -9 "$victim"
  waited=0
  while kill -0 "$job" 2> /dev/null; do
    sleep 0.1
    waited=$((waited + 1))
    [ "$waited" -lt 150 ] || { kill -9 "$job"; fail "the job went on for 15 s after one rank was killed"; }
  done
  wait "$job"
  status=$?
  elapsed=$(awk -v ns=$(($(date +%s%N) - start)) 'BEGIN { printf "%.1f", ns / 1e9 }')
  [ "$status" -ne 0 ] || fail "mpirun exited 0 although a rank was killed"
  for rank in $ranks; do  # gone, or a zombie that its new parent has not reaped yet
    state=$(ps -o stat= -p "$rank" 2> /dev/null)
    case "$state" in "" | Z*) ;; *) fail "rank process $rank still runs ($state) after the job ended" ;; esac
  done
  echo "one of $np ranks SIGKILLed mid-step: the job ended in ${elapsed}s (exit $status), no rank left running"
  ;;
random)
  ck=$scratch/ck
  step=0 i=1 interrupted=0
  while [ "$i" -le "$iterations" ]; do
    resume=""
    [ "$step" -eq 0 ] || resume="--resume $ck"
    before=$(cat "$ck/index.json" 2> /dev/null | cksum)
    "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np "$np" \
      "$gpt" $model --zero-stage 2 --steps 100000000 --checkpoint-every 1 --checkpoint "$ck" $resume \
      > "$scratch/out" 2>&1 &
    job=$!
    # Once this job saved (the index changed, or appeared), wait 0-1.5 s and kill a random rank.
    waited=0
    until [ -f "$ck/index.json" ] && [ "$(cat "$ck/index.json" 2> /dev/null | cksum)" != "$before" ]; do
      sleep 0.1
      waited=$((waited + 1))
      [ "$waited" -lt 600 ] || { kill -9 "$job"; fail "no save within 60 s: $(cat "$scratch/out")"; }
    done
    if [ $((i % 2)) -eq 1 ]; then
      delay=$(awk -v seed="$$$i" 'BEGIN { srand(seed); printf "%.2f", rand() * 1.5 }')
      sleep "$delay"
      moment="${delay}s after a save"
    else
      # As soon as a save's temporary file shows (a shard or the index being written).
      waited=0
      until ls "$ck" | grep -q '\.tmp\.'; do
        sleep 0.01
        waited=$((waited + 1))
        [ "$waited" -lt 3000 ] || { kill -9 "$job"; fail "no temporary file seen within 30 s"; }
      done
      moment="while a save was writing"
    fi
    ranks=$(pgrep -P "$job")
    victim=$(echo "$ranks" | awk -v seed="$i$$" 'BEGIN { srand(seed) } { line[NR] = $0 }
                                                  END { print line[int(rand() * NR) + 1] }')
    [ -n "$victim" ] || { kill -9 "$job"; fail "no rank process found under mpirun"; }
    kill -9 "$victim"
    waited=0
    while kill -0 "$job" 2> /dev/null; do
      sleep 0.1
      waited=$((waited + 1))
      [ "$waited" -lt 150 ] || { kill -9 "$job"; fail "the job went on for 15 s after a rank was killed"; }
    done
    wait "$job"
    # Files beyond index.json and its shards: the kill interrupted a save (the next one clears them).
    extra=$(($(ls "$ck" | wc -l) - np - 1))
    loaded=$(sharded_step "$ck")
    [ "$loaded" -ge "$step" ] && [ "$loaded" -ge 1 ] || fail "iteration $i: step $loaded loads, after step $step before"
    echo "iteration $i: a rank killed $moment ($extra files of an interrupted save left);" \
         "step $loaded loads (was $step)"
    [ "$extra" -eq 0 ] || interrupted=$((interrupted + 1))
    step=$loaded
    i=$((i + 1))
  done
  echo "random: $iterations kills at random moments of a job saving every step ($interrupted of them interrupted" \
       "a save), every one left a loadable checkpoint"
  ;;
*)
  sed -n '2,22p' "$0"
  exit 2
  ;;
esac
