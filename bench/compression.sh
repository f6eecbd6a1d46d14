#!/usr/bin/env bash
# The compression benchmark on the Fashion-MNIST CNN: the same mnist_train run (same seed,
# steps and schedule) as the baseline, with 50% channel and fc1-row pruning, 8- and 4-bit weight
# QAT, 90% gradual l1 sparsity (configs/compression_cnn_*.json), and a half-width student
# trained alone and distilled from the baseline. Prints each run's test accuracy against the
# baseline's, and for the compressed runs the cleaned model's parameters, file size and
# inference time against the dense model's (one process, the threads of core/parallel).
# Usage: bench/compression.sh [STEPS (default 400)] [OUT_DIR (default a temp folder)]
# With EPOCH=1 it adds the recipes measured against the one-epoch baseline: that baseline is
# the teacher (trained 938 steps, 2.3x the student's 400) of half-width students distilled with
# (alpha, T) from (0.5, 4) to (2, 1), and 90% l1 sparsity pruned gradually over steps 100-600
# and fine-tuned to the epoch's end (configs/compression_cnn_sparse90_epoch.json).
# With CHANNELS=1 it adds the channel-pruning study over CHANNEL_EPOCHS full epochs (default 2,
# each run a few minutes per epoch with one thread): the unpruned baseline, 50% of conv channels
# and fc1 rows cut at step 100 (configs/compression_cnn_channels50.json), and the same pruned
# gradually over steps 100-1000 (configs/compression_cnn_channels50_gradual.json) and 500-1400,
# each compared with the baseline trained for the same steps; the pruned runs also report the
# cleaned model.
# With GPT=1 it adds the GPT runs (gpt_train, tiny sizes): a 6-layer teacher, a 3-layer student
# trained alone, and the same student initialised by layer_reduction from teacher layers 0, 2, 4
# and distilled (configs/compression_gpt_layer_reduction.json), each for GPT_STEPS steps.
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
report() {  # BASELINE RUN...: accuracy of each run against the baseline's
  local base
  base=$(accuracy "$1")
  printf '%-18s %9s %9s\n' run "accuracy" "vs $1"
  for name in "$@"; do
    acc=$(accuracy "$name")
    printf '%-18s %8s%% %+8.2f\n' "$name" "$acc" "$(echo "$acc - $base" | bc -l)"
  done
}

run baseline
run channels50 --compression-config configs/compression_cnn_channels50.json
run qat8 --compression-config configs/compression_cnn_qat8.json
run qat4 --compression-config configs/compression_cnn_qat4.json
run sparse90 --compression-config configs/compression_cnn_sparse90.json
run student --width 0.5
run distilled --width 0.5 --teacher "$out/baseline.safetensors" --distill-alpha 0.25 \
  --distill-temperature 2

echo "Fashion-MNIST CNN, $steps steps of 64 (seed 1); logs in $out"
report baseline channels50 qat8 qat4 sparse90 student distilled
for name in channels50 qat8 qat4 sparse90; do
  echo "$name:"
  grep '^compression:' "$out/$name.log" | sed 's/^/  /'
done

if [[ ${EPOCH:-0} == 1 ]]; then
  student_steps=$steps
  steps=938
  run epoch_baseline
  run epoch_sparse90 --compression-config configs/compression_cnn_sparse90_epoch.json
  run epoch_channels50 --compression-config configs/compression_cnn_channels50.json
  run epoch_channels50_distilled --compression-config configs/compression_cnn_channels50.json \
    --teacher "$out/epoch_baseline.safetensors" --distill-alpha 2 --distill-temperature 1
  steps=$student_steps
  for setting in "0.5 4" "4 2" "1 2" "1 1.5" "1 1" "2 1"; do
    read -r alpha temperature <<<"$setting"
    run "distilled_a${alpha}_t${temperature}" --width 0.5 --distill-alpha "$alpha" \
      --distill-temperature "$temperature" --teacher "$out/epoch_baseline.safetensors"
  done
  echo "One epoch (938 steps):"
  report epoch_baseline epoch_sparse90 epoch_channels50 epoch_channels50_distilled
  echo "Half-width students, $steps steps, teacher: the one-epoch baseline:"
  report student distilled_a0.5_t4 distilled_a4_t2 distilled_a1_t2 distilled_a1_t1.5 \
    distilled_a1_t1 distilled_a2_t1
fi

if [[ ${CHANNELS:-0} == 1 ]]; then
  epochs=${CHANNEL_EPOCHS:-2}
  full() {  # NAME FLAGS...: whole epochs, no step limit
    local name=$1
    shift
    apps/mnist_train --dataset fashion --epochs "$epochs" --save "$out/$name.safetensors" "$@" \
      >"$out/$name.log" 2>&1
  }
  # The final epoch's accuracy replaces accuracy()'s first-epoch line for these runs.
  final_accuracy() { sed -n "s/^epoch $epochs: .*test accuracy \([0-9.]*\)%.*/\1/p" "$out/$1.log"; }
  full channels_baseline &
  full channels_cut --compression-config configs/compression_cnn_channels50.json &
  wait
  # The same gradual cut later, over steps 500-1400, after the network trained dense longer.
  sed 's/"schedule_offset": 100, "schedule_offset_end": 1000/"schedule_offset": 500, "schedule_offset_end": 1400/' \
    configs/compression_cnn_channels50_gradual.json >"$out/channels50_gradual_late.json"
  full channels_gradual --compression-config configs/compression_cnn_channels50_gradual.json &
  full channels_gradual_late --compression-config "$out/channels50_gradual_late.json" &
  wait
  base=$(final_accuracy channels_baseline)
  echo "Channel and fc1-row pruning to 50%, $epochs epochs, against the baseline's $base%:"
  for name in channels_cut channels_gradual channels_gradual_late; do
    acc=$(final_accuracy "$name")
    printf '%-18s %8s%% %+8.2f\n' "$name" "$acc" "$(echo "$acc - $base" | bc -l)"
    grep '^compression: cleaned' "$out/$name.log" | sed 's/^/  /'
  done
fi

if [[ ${GPT:-0} == 1 ]]; then
  gpt_steps=${GPT_STEPS:-300}
  gpt() {
    local name=$1
    shift
    apps/gpt_train --n_embd 64 --n_head 4 --block_size 64 --batch-size 8 --steps "$gpt_steps" \
      --eval-interval "$gpt_steps" --log-interval "$gpt_steps" --lr 0.003 --data-dir "$out/data" \
      --save "$out/$name.safetensors" "$@" >"$out/$name.log" 2>&1
  }
  validation() { sed -n 's/.*validation loss \([0-9.]*\)$/\1/p' "$out/$1.log" | tail -1; }
  gpt gpt_teacher --n_layer 6 --steps $((2 * gpt_steps))
  gpt gpt_student --n_layer 3
  gpt gpt_reduced --n_layer 3 --teacher "$out/gpt_teacher.safetensors" \
    --compression-config configs/compression_gpt_layer_reduction.json --distill-alpha 0.5
  echo "GPT (width 64, 4 heads, context 64), $gpt_steps steps; validation loss:"
  for name in gpt_teacher gpt_student gpt_reduced; do
    printf '%-12s %s\n' "$name" "$(validation "$name")"
  done
fi
