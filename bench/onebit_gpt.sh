#!/usr/bin/env bash
# The GPT on Debian's fortunes trained by apps/gpt_train on 8 ranks with fp32 Adam and with each
# compressed-communication optimizer (OneBitAdam, ZeroOneAdam, OneBitLamb) for the same steps,
# the same seed, data, learning-rate schedule and betas; prints each run's validation loss and
# its gap to Adam's (the bound held in docs/optimizers.md is 0.05).
#
# Settings (environment): RANKS (8), STEPS (600), WARMUP (100: the learning rate's linear
# warm-up), FREEZE (freeze_step / var_freeze_step: WARMUP), LR (0.002, Adam's and the 1-bit Adams'),
# LAMB_LR (0.02: LAMB's step is relative to each weight's norm), EPS (1e-6), ONLY (a
# space-separated subset of the optimizers to run), MODEL_FLAGS (gpt_train's model flags),
# WINDOWS (windows of the global batch a step: 4 per rank; set it to train the same global
# batch on fewer ranks, e.g. 1 rank, where nothing is compressed).
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${RANKS:-8}
steps=${STEPS:-600}
warmup=${WARMUP:-100}
lr=${LR:-0.002}
lamb_lr=${LAMB_LR:-0.02}
eps=${EPS:-1e-6}
only=${ONLY:-Adam OneBitAdam ZeroOneAdam OneBitLamb}
windows=${WINDOWS:-$((4 * ranks))}
freeze=${FREEZE:-$warmup}
model_flags=${MODEL_FLAGS:---n_layer 2 --n_head 4 --n_embd 128 --block_size 64}
mpirun_command=(mpirun --oversubscribe --bind-to none --mca btl self,vader
                --mca mpi_yield_when_idle 1 -x ZT_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpirun_command+=(--allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# config TYPE LR EXTRA_PARAMS: a stage-0 config, the shared schedule.
config() {
  cat <<EOF
{
  "train_batch_size": $windows, "gradient_accumulation_steps": 1, "steps_per_print": 0,
  "optimizer": {"type": "$1", "params": {"lr": $2, "betas": [0.9, 0.99], "eps": $eps$3}},
  "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": 0, "warmup_max_lr": $2,
    "warmup_num_steps": $warmup, "warmup_type": "linear", "total_num_steps": $steps}},
  "zero_optimization": {"stage": 0}
}
EOF
}
config Adam "$lr" "" >"$work/Adam.json"
config OneBitAdam "$lr" ", \"freeze_step\": $freeze" >"$work/OneBitAdam.json"
config ZeroOneAdam "$lr" ", \"var_freeze_step\": $freeze" >"$work/ZeroOneAdam.json"
config OneBitLamb "$lamb_lr" ", \"freeze_step\": $freeze" >"$work/OneBitLamb.json"

echo "onebit_gpt: $ranks ranks, $steps steps, warm-up $warmup, freeze $freeze, lr $lr (LAMB $lamb_lr), eps $eps," \
     "model '$model_flags', $(nproc) cores"
printf "%-12s %16s %12s %10s\n" optimizer "validation loss" "vs Adam" seconds
adam_loss=""
for optimizer in $only; do
  start=$SECONDS
  # shellcheck disable=SC2086  # the model flags split into words
  "${mpirun_command[@]}" -np "$ranks" apps/gpt_train $model_flags --steps "$steps" \
    --eval-interval "$steps" --eval-iters 16 --log-interval 100 --save "" \
    --deepspeed_config "$work/$optimizer.json" >"$work/$optimizer.log" 2>&1 ||
    { echo "$optimizer failed:"; tail -n 5 "$work/$optimizer.log"; continue; }
  loss=$(awk '/^trained/ { print $NF }' "$work/$optimizer.log")
  [ "$optimizer" = Adam ] && adam_loss=$loss
  gap=$([ -n "$adam_loss" ] && awk -v a="$loss" -v b="$adam_loss" 'BEGIN { printf "%+.4f", a - b }' || echo -)
  printf "%-12s %16s %12s %10s\n" "$optimizer" "$loss" "$gap" "$((SECONDS - start))"
done
