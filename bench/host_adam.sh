#!/usr/bin/env bash
# The host's fused AdamW (bench/host_adam) against the machine's memory bandwidth and against
# PyTorch's torch.optim.AdamW on CPU tensors (bench/host_adam_pytorch.py), at 1 and 2 threads on
# 50M parameters. The two programs run in turn ROUNDS times and each figure is the median of its
# rounds, so that a neighbour's load on a shared machine falls on both sides alike. Targets: the
# update at >= 70% of the copy's bandwidth (28 bytes per parameter against the best of memcpy
# and a streaming copy of the same working set), >= 5x PyTorch's default AdamW and >= its
# fused=True.
#
# Settings (environment): PYTHON (a python with torch 2.x; /work/peer-venv/bin/python if it
# exists, else python3), ROUNDS (5), PARAMS (50000000), STEPS timed steps per run (9).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
params=${PARAMS:-50000000}
steps=${STEPS:-9}
python=${PYTHON:-$([ -x /work/peer-venv/bin/python ] && echo /work/peer-venv/bin/python || echo python3)}
if ! "$python" -c "import torch" 2>/dev/null; then
  echo "bench/host_adam.sh: $python cannot import torch (set PYTHON to a python with PyTorch 2.x)" >&2
  exit 1
fi
[ -x bench/host_adam ] || { echo "bench/host_adam.sh: build bench/host_adam first (make bench/host_adam)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "host_adam: $params parameters, $rounds rounds of $steps timed steps a side; $(nproc) cores;" \
     "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
  # Rows of both tables: "threads case ms Mparams/s GB/s [%copy %traffic]".
  bench/host_adam --params "$params" --rounds "$steps" | awk '$1 ~ /^[0-9]+$/' >>"$work/rows"
  "$python" bench/host_adam_pytorch.py --params "$params" --rounds "$steps" |
    awk '$1 ~ /^[0-9]+$/' >>"$work/rows"
  echo "  round $round done"
done
median() {  # the median of column $3 over the rows of thread count $1 and case $2
  awk -v t="$1" -v c="$2" -v k="$3" '$1 == t && $2 == c { v = $k; sub("%", "", v); print v }' \
    "$work/rows" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
printf "%7s %11s %8s %7s %9s %11s %11s %8s %8s %11s\n" threads "ours Mp/s" "GB/s" "%copy" \
  "%traffic" "torch def" "torch fused" "x def" "x fused" "bf16 Mp/s"
verdict=met
for threads in 1 2; do
  ours=$(median "$threads" adamw_f32 4)
  rate=$(median "$threads" adamw_f32 5)
  of_copy=$(median "$threads" adamw_f32 6)
  of_traffic=$(median "$threads" adamw_f32 7)
  default=$(median "$threads" torch_adamw_default 4)
  fused=$(median "$threads" torch_adamw_fused 4)
  half=$(median "$threads" adamw_bf16_grad_param 4)
  over_default=$(awk -v a="$ours" -v b="$default" 'BEGIN { printf "%.2f", a / b }')
  over_fused=$(awk -v a="$ours" -v b="$fused" 'BEGIN { printf "%.2f", a / b }')
  awk -v c="$of_copy" -v d="$over_default" -v f="$over_fused" \
    'BEGIN { exit !(c < 70 || d < 5 || f < 1) }' && verdict="NOT met"
  printf "%7s %11s %8s %6s%% %8s%% %11s %11s %7sx %7sx %11s\n" "$threads" "$ours" "$rate" \
    "$of_copy" "$of_traffic" "$default" "$fused" "$over_default" "$over_fused" "$half"
done
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  %traffic: of a loop with the update's reads and writes and an add for arithmetic;"
echo "  bf16: the update reading a bf16 gradient and writing a bf16 copy of the parameter."
echo "targets: >= 70% of the copy's bandwidth, >= 5x torch's default, >= 1x its fused: $verdict"
