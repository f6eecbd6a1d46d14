#!/usr/bin/env bash
# A GPT with the fixed block-sparse layout trained at T = 4096 on 8 ranks at ZeRO stage 3 under
# a per-rank device limit (gpt_train --device-memory-mib) that the dense GPT with eager
# attention (the [B, H, T, T] scores kept for the backward, as DeepSpeed's dense baseline does)
# cannot fit: that run must end with the out-of-memory error naming the limit. The fused dense
# kernel, O(T) like the sparse one, is run under the same limit for two steps to show that it
# fits too. Then the validation loss on fortunes of the sparse run beside a dense run at T = 1024
# with the same tokens per step and the same steps (docs/sparse_attention.md quotes the output).
#
# Settings (environment): RANKS (8), STEPS (30), LIMIT_MIB (64), LAYERS (2), HEADS (4),
# WIDTH (64), LR (0.002).
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${RANKS:-8}
steps=${STEPS:-30}
limit_mib=${LIMIT_MIB:-64}
layers=${LAYERS:-2}
heads=${HEADS:-4}
width=${WIDTH:-64}
lr=${LR:-0.002}
mpirun_command=(nice -n 5 mpirun --oversubscribe --bind-to none --mca btl self,vader
                --mca mpi_yield_when_idle 1 -x ZT_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpirun_command+=(--allow-run-as-root)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# ZeRO stage 3, fp32, AdamW warmed up over a tenth of the steps and decayed to 0; `windows` per
# rank per step; $2 the sparse_attention block or nothing.
write_config() {
  local windows=$1 sparse=$2 warmup=$(( steps / 10 > 0 ? steps / 10 : 1 ))
  cat <<EOF
{
  "train_batch_size": $((windows * ranks)), "gradient_accumulation_steps": 1,
  "steps_per_print": 0, "gradient_clipping": 1.0,
  "optimizer": {"type": "AdamW",
                "params": {"lr": $lr, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.1}},
  "scheduler": {"type": "WarmupDecayLR",
                "params": {"warmup_min_lr": 0, "warmup_max_lr": $lr, "warmup_num_steps": $warmup,
                           "warmup_type": "linear", "total_num_steps": $steps}},
  "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}$sparse
}
EOF
}
write_config 1 ',
  "sparse_attention": {"mode": "fixed", "block": 16, "attention": "unidirectional",
                       "num_local_blocks": 4, "num_global_blocks": 1}' >"$scratch/fixed_4096.json"
write_config 1 "" >"$scratch/dense_4096.json"
write_config 4 "" >"$scratch/dense_1024.json"

# gpt_train on $ranks ranks; its output in $scratch/$name.{out,err}, its status in $status.
run() {
  local name=$1
  shift
  status=0
  timeout 1800 "${mpirun_command[@]}" -np "$ranks" apps/gpt_train --n_layer "$layers" \
    --n_head "$heads" --n_embd "$width" --data-dir "$scratch/data" --save= --eval-iters 4 \
    --log-interval 10 "$@" >"$scratch/$name.out" 2>"$scratch/$name.err" || status=$?
}
fail() {
  echo "sparse_long_context: $1" >&2
  cat "$scratch/$2.out" "$scratch/$2.err" >&2
  exit 1
}

echo "sparse_long_context: GPT-2 $layers layers, $heads heads, width $width; $ranks ranks, ZeRO"
echo "  stage 3, fp32, $steps steps of 32768 tokens; --device-memory-mib $limit_mib on every rank; $(nproc) cores"

run eager_4096 --deepspeed_config "$scratch/dense_4096.json" --block_size 4096 --steps "$steps" \
  --max-steps 2 --attention-impl eager --device-memory-mib "$limit_mib"
if [ "$status" -eq 0 ] || ! grep -q "would pass the limit of $limit_mib.00 MiB" "$scratch/eager_4096.err"; then
  fail "the dense model with eager attention was expected to run out of memory" eager_4096
fi
echo "dense, eager attention, T=4096: $(grep -m1 -o 'out of memory on cpu: allocating .* would pass the limit of [0-9.]* MiB' "$scratch/eager_4096.err")"

run fused_4096 --deepspeed_config "$scratch/dense_4096.json" --block_size 4096 --steps "$steps" \
  --max-steps 2 --device-memory-mib "$limit_mib"
[ "$status" -eq 0 ] || fail "the dense model with fused attention failed" fused_4096
echo "dense, fused attention, T=4096 (2 steps): $(grep -o 'peak device memory .*' "$scratch/fused_4096.out")"

for name in fixed_4096 dense_1024; do
  block_size=${name#*_}
  run "$name" --deepspeed_config "$scratch/$name.json" --block_size "$block_size" \
    --steps "$steps" --eval-interval "$steps" --device-memory-mib "$limit_mib"
  [ "$status" -eq 0 ] || fail "$name failed" "$name"
  label="sparse fixed, T=4096"
  [ "$name" = dense_1024 ] && label="dense, fused attention, T=1024"
  echo "$label: $(grep -o 'trained .*' "$scratch/$name.out")"
done
