#!/usr/bin/env bash
# Convergence of the compressed-communication optimizers against Adam, run as DeepSpeed's users
# run them: the learning rate warmed up linearly and decayed to 0 (WarmupDecayLR), freeze_step /
# var_freeze_step at the warm-up's end, and every optimizer given the same schedule, seed, data,
# betas and eps. The GPT (apps/gpt_train on Debian's fortunes: validation loss) and the MNIST CNN
# (apps/mnist_train on Fashion-MNIST: test accuracy), 8 ranks each. Each row prints its gap to
# Adam's; "Adam, no bias correction" is Adam with DeepSpeed's 1-bit update rule (no bias
# correction) and nothing compressed, and "Lamb" is plain LAMB at 1-bit LAMB's settings.
#
# Settings (environment): MODELS ("gpt cnn"), RANKS (8), ONLY (a space-separated subset of Adam
# AdamNoBC OneBitAdam ZeroOneAdam OneBitLamb Lamb), EPS (both models' eps), BETA2 (0.99),
# PARAMS (more optimizer params for every run, e.g. '"weight_decay": 0.01'), EXACT_AVERAGE (1: the
# compressed optimizers average exactly, nothing compressed: their params get ZeroTrain's
# "zerotrain_exact_average": true), ZERO_ONE_PARAMS (more params for ZeroOneAdam only), LOGS
# (a folder that keeps each run's config and log);
# GPT: GPT_STEPS (600), GPT_WARMUP (100), GPT_LR (0.002), GPT_LAMB_LR (0.02), GPT_EPS (1e-6),
# GPT_WINDOWS (windows of 64 bytes a step: 4 per rank; set it to train the same global batch on
# fewer ranks, e.g. on 1 rank, where nothing is compressed);
# CNN: CNN_STEPS (300), CNN_WARMUP (60), CNN_LR (0.001), CNN_LAMB_LR (0.02), CNN_BATCH (128),
# CNN_EPS (1e-4: at 1e-6 1-bit Adam and 0/1 Adam turn to NaN, docs/optimizers.md).
# ZeroOneAdam's var_update_scaler is the warm-up's length unless ZERO_ONE_PARAMS sets it: every
# warm-up step then updates the variance from the all-reduced gradient, as the warm-up of 1-bit
# Adam and 1-bit LAMB does, and all three compress from the same step on (docs/optimizers.md).
# Each run takes a few minutes on 2 cores; run it under `nice`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
ranks=${RANKS:-8}
models=${MODELS:-gpt cnn}
only=${ONLY:-Adam AdamNoBC OneBitAdam ZeroOneAdam OneBitLamb Lamb}
beta2=${BETA2:-0.99}
gpt_windows=${GPT_WINDOWS:-$((4 * ranks))}
gpt_eps=${GPT_EPS:-${EPS:-1e-6}}
cnn_eps=${CNN_EPS:-${EPS:-1e-4}}
mpirun_command=(mpirun --oversubscribe --bind-to none --mca btl "self,vader"
                --mca mpi_yield_when_idle 1 -x ZT_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpirun_command+=(--allow-run-as-root)
# LOGS=DIR keeps every run's config and log there; otherwise they go with a temporary folder.
if [ -n "${LOGS:-}" ]; then
  mkdir -p "$LOGS" && work=$(cd "$LOGS" && pwd)
else
  work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT
fi

# config OPTIMIZER BATCH STEPS WARMUP LR LAMB_LR EPS: a stage-0 config with the shared schedule;
# only the optimizer's type (and LAMB's learning rate, relative to each weight's norm) differ.
config() {
  local type=$1 lr=$5 eps=$7 extra=""
  case $1 in
    AdamNoBC) type=Adam extra=', "bias_correction": false' ;;
    OneBitAdam | OneBitLamb) extra=", \"freeze_step\": $4" ;;
    ZeroOneAdam) extra=", \"var_freeze_step\": $4, ${ZERO_ONE_PARAMS:-\"var_update_scaler\": $4}" ;;
    Lamb) extra=', "bias_correction": false' ;;
  esac
  case $1 in OneBitLamb | Lamb) lr=$6 ;; esac
  # EXACT_AVERAGE=1: what the compression costs (the compressed optimizers average exactly).
  case $1 in OneBitAdam | ZeroOneAdam | OneBitLamb)
    [ "${EXACT_AVERAGE:-0}" = 1 ] && extra="$extra, \"zerotrain_exact_average\": true" ;;
  esac
  cat <<EOF
{
  "train_batch_size": $2, "gradient_accumulation_steps": 1, "steps_per_print": 0,
  "optimizer": {"type": "$type",
    "params": {"lr": $lr, "betas": [0.9, $beta2], "eps": $eps$extra${PARAMS:+, $PARAMS}}},
  "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": 0, "warmup_max_lr": $lr,
    "warmup_num_steps": $4, "warmup_type": "linear", "total_num_steps": $3}},
  "zero_optimization": {"stage": 0}
}
EOF
}

# run_gpt OPTIMIZER: prints the validation loss after the last step.
run_gpt() {
  local steps=${GPT_STEPS:-600} warmup=${GPT_WARMUP:-100}
  config "$1" "$gpt_windows" "$steps" "$warmup" "${GPT_LR:-0.002}" "${GPT_LAMB_LR:-0.02}" \
    "$gpt_eps" >"$work/gpt-$1.json"
  "${mpirun_command[@]}" -np "$ranks" apps/gpt_train --n_layer 2 --n_head 4 --n_embd 128 \
    --block_size 64 --steps "$steps" --eval-interval "$steps" --eval-iters 16 \
    --log-interval 100 --save "" --deepspeed_config "$work/gpt-$1.json" \
    >"$work/gpt-$1.log" 2>&1 || { tail -n 5 "$work/gpt-$1.log" >&2; return 1; }
  sed -n 's/^trained.*validation loss \([0-9.]*\);.*/\1/p' "$work/gpt-$1.log"
}

# run_cnn OPTIMIZER: prints the test accuracy (percent) after the last step.
run_cnn() {
  local steps=${CNN_STEPS:-300} warmup=${CNN_WARMUP:-60} batch=${CNN_BATCH:-128}
  config "$1" "$batch" "$steps" "$warmup" "${CNN_LR:-0.001}" "${CNN_LAMB_LR:-0.02}" "$cnn_eps" \
    >"$work/cnn-$1.json"
  # mnist_train writes its model and reads its data relative to the working directory.
  (cd "$work" && "${mpirun_command[@]}" -np "$ranks" "$repo/apps/mnist_train" --seed 1 \
    --epochs $(((steps * batch + 59999) / 60000)) --max-steps "$steps" \
    --data-dir "$repo/data/mnist" --save "$work/cnn-$1.safetensors" \
    --deepspeed_config "$work/cnn-$1.json") >"$work/cnn-$1.log" 2>&1 ||
    { tail -n 5 "$work/cnn-$1.log" >&2; return 1; }
  sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' "$work/cnn-$1.log" | tail -n 1
}

for model in $models; do
  case $model in
    gpt) echo "GPT (2 layers, width 128) on fortunes: ${GPT_STEPS:-600} steps of $gpt_windows" \
              "windows, warm-up ${GPT_WARMUP:-100}, lr ${GPT_LR:-0.002} (LAMB ${GPT_LAMB_LR:-0.02})" ;;
    cnn) echo "MNIST CNN on Fashion-MNIST: ${CNN_STEPS:-300} steps of ${CNN_BATCH:-128}," \
              "warm-up ${CNN_WARMUP:-60}, lr ${CNN_LR:-0.001} (LAMB ${CNN_LAMB_LR:-0.02})" ;;
    *) echo "onebit_convergence: MODELS: expected gpt and/or cnn, got '$model'" >&2; exit 2 ;;
  esac
  eps=$([ "$model" = gpt ] && echo "$gpt_eps" || echo "$cnn_eps")
  echo "$ranks ranks, betas (0.9, $beta2), eps $eps, freeze at the warm-up's end, $(nproc) cores"
  printf "%-12s %12s %10s %8s\n" optimizer "$([ "$model" = gpt ] && echo "val. loss" || echo "accuracy %")" \
    "vs Adam" seconds
  adam=""
  for optimizer in $only; do
    start=$SECONDS
    result=$("run_$model" "$optimizer") || { echo "$optimizer failed"; continue; }
    [ "$optimizer" = Adam ] && adam=$result
    gap=$([ -n "$adam" ] && awk -v a="$result" -v b="$adam" 'BEGIN { printf "%+.4f", a - b }' ||
      echo -)
    printf "%-12s %12s %10s %8s\n" "$optimizer" "$result" "$gap" "$((SECONDS - start))"
  done
done
