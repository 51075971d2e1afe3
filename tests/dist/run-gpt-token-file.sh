#!/bin/sh
# run-gpt-token-file.sh: the gpt example on an llm.c token file this script writes (GPT-2-range
# token ids, so the model's vocabulary is 50304, not 256), under mpirun -np 2 with ZeRO stage 2
# and mpirun's output redirected to a file:
#   - the training loss falls (first against last logged loss, rank 0's metrics);
#   - the log has no carriage return or escape code, one progress stream (each "step N/M" line
#     once), each rank's start line once and rank 0's header once; under a terminal (script(1))
#     the progress line is redrawn in place;
#   - a token file with a truncated body is refused (exit 2) with the reason.
#
#   run-gpt-token-file.sh GPT
#   environment: MPIEXEC (default mpirun)
set -u
if [ $# -lt 1 ]; then
  sed -n '2,12p' "$0"
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
command -v perl > /dev/null || fail "perl is needed to write the token file"

# 4000 tokens repeating a 13-token phrase of ids between 300 and 50000: learnable in a few steps.
# Header: 256 little-endian int32 (magic 20240520, version 1 = uint16 tokens, count), then the tokens.
perl -e '
  my @phrase = (300, 50000, 1234, 4321, 777, 50256, 999, 31337, 2024, 40000, 512, 8888, 12345);
  my @tokens = map { $phrase[$_ % 13] } 0 .. 3999;
  print pack("l<256", 20240520, 1, scalar(@tokens), (0) x 253), pack("S<*", @tokens);' > "$scratch/train.bin"
# The same header with 10 tokens promised and 3 present.
perl -e 'print pack("l<256", 20240520, 1, 10, (0) x 253), pack("S<*", 1, 2, 3);' > "$scratch/cut.bin"

model="--context 16 --d-model 16 --layers 2 --heads 2 --batch 4 --threads 1 --dropout 0 --lr 0.01"
timeout 240 "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np 2 \
  "$gpt" $model --data "$scratch/train.bin" --zero-stage 2 --steps 30 --log-every 5 --eval-every 30 \
  --eval-batches 4 --sample-bytes 8 --metrics "$scratch/metrics.jsonl" > "$scratch/out" 2>&1
status=$?
[ "$status" -eq 0 ] || fail "mpirun -np 2 gpt on a token file exited $status: $(cat "$scratch/out")"
grep -q "vocabulary 50304:" "$scratch/out" || fail "expected a vocabulary of 50304 for GPT-2 token ids: $(cat "$scratch/out")"

first=$(grep '"loss"' "$scratch/metrics.jsonl" | head -n 1 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(grep '"loss"' "$scratch/metrics.jsonl" | tail -n 1 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
# Untrained: about ln 50304 = 10.8; the phrase is learnt far below that.
awk -v first="$first" -v last="$last" 'BEGIN { exit !(first > 9 && last < first - 3) }' ||
  fail "expected the loss to fall from about 10.8 by more than 3, got $first -> $last: $(cat "$scratch/metrics.jsonl")"

if tr -d '\n' < "$scratch/out" | grep -q "$(printf '[\r\033]')"; then
  fail "the redirected log holds carriage returns or escape codes: $(od -c "$scratch/out" | head -n 20)"
fi
progress=$(grep -c '^step [0-9]*/30 ' "$scratch/out")
distinct=$(grep '^step [0-9]*/30 ' "$scratch/out" | cut -d' ' -f2 | sort -u | wc -l)
[ "$progress" -eq 6 ] && [ "$distinct" -eq 6 ] ||
  fail "expected one progress stream (steps 5, 10, ..., 30 once each), got $progress lines: $(cat "$scratch/out")"
for rank in 0 1; do
  [ "$(grep -c "^gpt: rank $rank/2 on .* cpu, fp32; global batch 8 = 4 per rank x 2 ranks x 1 micro-batches$" \
       "$scratch/out")" -eq 1 ] || fail "expected rank $rank's start line once: $(cat "$scratch/out")"
done
[ "$(grep -c "^gpt: 2 layers" "$scratch/out")" -eq 1 ] || fail "expected rank 0's header once: $(cat "$scratch/out")"

# The other half of the rule: when mpirun's own stdout is a terminal (script(1) gives it one), the
# line is redrawn in place.
if command -v script > /dev/null; then
  timeout 240 script -qec "\"$mpiexec\" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 \
    -np 2 \"$gpt\" $model --data \"$scratch/train.bin\" --steps 4 --eval-every 100 --sample-bytes 0" /dev/null \
    < /dev/null > "$scratch/terminal.out" 2>&1 || fail "gpt under mpirun in a terminal: $(cat "$scratch/terminal.out")"
  grep -q "$(printf '\033')\\[K" "$scratch/terminal.out" ||
    fail "expected the progress redrawn in place when mpirun writes to a terminal: $(od -c "$scratch/terminal.out" | head -n 20)"
  in_place="redrawn in place in a terminal"
else
  in_place="script(1) missing: the terminal case not checked"
fi

"$gpt" $model --data "$scratch/cut.bin" --steps 1 > "$scratch/cut.out" 2>&1
status=$?
[ "$status" -eq 2 ] && grep -q "cut.bin.*promises 10 tokens.*truncated?" "$scratch/cut.out" ||
  fail "expected a truncated token file to be refused with exit 2 and the reason, got exit $status: $(cat "$scratch/cut.out")"
echo "gpt on a token file under mpirun -np 2 (ZeRO 2): loss $first -> $last; plain log, one progress stream;" \
     "$in_place; a truncated token file refused"
