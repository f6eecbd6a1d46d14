#!/usr/bin/env bash
# The compression benchmark on the Fashion-MNIST CNN: the same mnist_train run (same seed,
# steps and schedule) as the baseline, with 50% channel and fc1-row pruning, 8- and 4-bit weight
# QAT, 90% gradual l1 sparsity (configs/compression_cnn_*.json), and a half-width student
# trained alone and distilled from the baseline. Prints each run's test accuracy against the
# baseline's, and for the compressed runs the cleaned model's parameters, file size and
# inference time against the dense model's (one process, the threads of core/parallel).
# Usage: bench/compression.sh [STEPS (default 400)] [OUT_DIR (default a temp folder)]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
out=${2:-$(mktemp -d "${TMPDIR:-/tmp}/zt-compression-bench.XXXXXX")}
mkdir -p "$out"

run() {
  local name=$1
  shift
  apps/mnist_train --dataset fashion --epochs 1 --max-steps "$steps" \
    --save "$out/$name.safetensors" "$@" >"$out/$name.log" 2>&1
}
accuracy() { sed -n 's/^epoch 1: .*test accuracy \([0-9.]*\)%.*/\1/p' "$out/$1.log"; }

run baseline
run channels50 --compression-config configs/compression_cnn_channels50.json
run qat8 --compression-config configs/compression_cnn_qat8.json
run qat4 --compression-config configs/compression_cnn_qat4.json
run sparse90 --compression-config configs/compression_cnn_sparse90.json
run student --width 0.5
run distilled --width 0.5 --teacher "$out/baseline.safetensors" --distill-alpha 0.25 \
  --distill-temperature 2

base=$(accuracy baseline)
echo "Fashion-MNIST CNN, $steps steps of 64 (seed 1); logs in $out"
printf '%-12s %9s %9s\n' run "accuracy" "vs base"
for name in baseline channels50 qat8 qat4 sparse90 student distilled; do
  acc=$(accuracy "$name")
  printf '%-12s %8s%% %+8.2f\n' "$name" "$acc" "$(echo "$acc - $base" | bc -l)"
done
for name in channels50 qat8 qat4 sparse90; do
  echo "$name:"
  grep '^compression:' "$out/$name.log" | sed 's/^/  /'
done
