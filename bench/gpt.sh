#!/usr/bin/env bash
# Training tokens/s of the GPT-2 model (6 layers, 6 heads, width 384, T 256, batch 8, byte
# vocabulary, tied head; forward, cross entropy, backward, AdamW) in ZeroTrain (bench/gpt) and
# in PyTorch (bench/gpt_pytorch.py) at 1 and 2 threads, and their ratio. The two run in
# turn ROUNDS times and each figure is the median of its rounds, so that a neighbour's load on
# a shared machine falls on both sides alike. Target: ZeroTrain at 1.5x PyTorch or more.
#
# Settings (environment): PYTHON (a python with torch 2.x; /work/peer-venv/bin/python if it
# exists, else python3), ROUNDS (3), STEPS timed steps per run (10). Both sides inherit the
# OpenMP settings: on a machine whose cores other work shares, OMP_WAIT_POLICY=passive (threads
# that wait sleep instead of spinning) changes 2-thread figures several times over.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
steps=${STEPS:-10}
python=${PYTHON:-$([ -x /work/peer-venv/bin/python ] && echo /work/peer-venv/bin/python || echo python3)}
if ! "$python" -c "import torch" 2>/dev/null; then
  echo "bench/gpt.sh: $python cannot import torch (set PYTHON to a python with PyTorch 2.x)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "gpt: $rounds rounds of $steps timed steps a side; $(nproc) cores;" \
     "OMP_WAIT_POLICY ${OMP_WAIT_POLICY:-unset}; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
  # "pytorch VERSION threads N: TOKENS tokens/s ..." -> "N TOKENS"
  "$python" bench/gpt_pytorch.py --steps "$steps" |
    awk '$1 == "pytorch" { sub(":", "", $4); print $4, $5 }' >>"$work/torch"
  # bench/gpt's table rows: "threads tokens/s ms/step"
  bench/gpt --steps "$steps" | awk '$1 ~ /^[0-9]+$/ { print $1, $2 }' >>"$work/ours"
  echo "  round $round done"
done
median() {  # the median tokens/s of thread count $1 in file $2
  awk -v t="$1" '$1 == t { print $2 }' "$2" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
printf "%8s %16s %16s %11s\n" threads "zerotrain tok/s" "pytorch tok/s" "ours/torch"
verdict=met
for threads in 1 2; do
  ours=$(median "$threads" "$work/ours")
  torch=$(median "$threads" "$work/torch")
  ratio=$(awk -v a="$ours" -v b="$torch" 'BEGIN { printf "%.2f", a / b }')
  awk -v r="$ratio" 'BEGIN { exit !(r < 1.5) }' && verdict="NOT met"
  printf "%8s %16s %16s %10sx\n" "$threads" "$ours" "$torch" "$ratio"
done
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "target: ZeroTrain at 1.5x PyTorch's tokens/s or more at 1 and 2 threads: $verdict"
