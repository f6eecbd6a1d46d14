#!/usr/bin/env bash
# The largest GPT-2-like model (parameters) that trains at ZeRO stage 3 under a per-rank DEVICE
# limit: stage 3 alone, + offload_optimizer cpu, + offload_param cpu, and both offloads to NVMe,
# each built inside PartitionedInit so that no rank ever holds it whole; then the step time of
# each at one common width. Target: NVMe offload trains a model >= 10x larger than stage 3 alone
# (LIMIT_MIB 64, RANKS 8).
#
# Each (offload, width) trial is its own mpirun job of bench/offload: a rank out of device
# memory ends the job, so nothing of a failed trial survives into the next. Per offload the
# width (n_embd) moves from a first guess by a quarter of it until a trial fits and one fails,
# then a bisection narrows the gap to GRAIN. The out-of-memory line of the smallest width that
# failed is printed: it says what held the device bytes when the limit was passed.
#
# Every trial checkpoints the activations of each block (CHECKPOINT: cpu, the checkpoints in host
# memory; layers, on the device; none): what one block's forward and backward need then bounds
# the device, not the depth, so that the model state is what the offloads are measured on.
#
# Settings (environment): LIMIT_MIB (64), RANKS (8), LAYERS (16), BATCH sequences of 32 tokens per
# rank (2), PRECISION (bf16 or fp32), CHECKPOINT (cpu), GRAIN (32), TIME_WIDTH (256: the common
# width of the step times, 4 steps, the mean of the last 3), NVME_PATH (a fresh folder under /tmp), OFFLOADS and
# GUESSES (first widths, one per offload).
set -euo pipefail
cd "$(dirname "$0")/.."
limit_mib=${LIMIT_MIB:-64}
ranks=${RANKS:-8}
layers=${LAYERS:-16}
checkpoint=${CHECKPOINT:-cpu}
batch=${BATCH:-2}
precision=${PRECISION:-bf16}
grain=${GRAIN:-32}
time_width=${TIME_WIDTH:-256}
read -r -a offloads <<<"${OFFLOADS:-none optimizer_cpu cpu nvme}"
read -r -a guesses <<<"${GUESSES:-352 768 1216 1216}"
mpirun_command=(mpirun --oversubscribe --bind-to none --mca btl self,vader
                --mca mpi_yield_when_idle 1 -x ZT_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpirun_command+=(--allow-run-as-root)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
nvme_path=${NVME_PATH:-$scratch/nvme}
mkdir -p "$nvme_path"

echo "offload: $ranks ranks, a device limit of $limit_mib MiB per rank from construction on,"
echo "  GPT-2 layout ($layers blocks, 4 heads, vocabulary 256, 32 tokens), Adam, $precision, $batch"
echo "  sequences per rank, stage 3 with threshold 0, built inside PartitionedInit, activation"
echo "  checkpointing $checkpoint; $(nproc) cores"

# One trial: prints its "fit" and "peaks" lines and returns 0, returns 1 when a rank ran out of
# device memory (its line left in $scratch/oom).
trial() {
  local offload=$1 width=$2 steps=$3 status=0
  timeout 3600 "${mpirun_command[@]}" -np "$ranks" bench/offload --offload "$offload" \
    --precision "$precision" --width "$width" --layers "$layers" --batch "$batch" \
    --limit-mib "$limit_mib" --steps "$steps" --nvme-path "$nvme_path" --checkpoint "$checkpoint" \
    >"$scratch/out" 2>"$scratch/err" || status=$?
  if [ "$status" -eq 0 ] && grep -q '^fit ' "$scratch/out"; then
    grep -E '^(fit|peaks) ' "$scratch/out"
    return 0
  fi
  if [ "$status" -ne 0 ] && grep -q 'out of memory on cpu' "$scratch/err"; then
    grep -m1 'out of memory on cpu' "$scratch/err" >"$scratch/oom"
    return 1
  fi
  echo "offload: $offload width $width failed for a reason other than memory (status $status):" >&2
  cat "$scratch/out" "$scratch/err" >&2
  exit 1
}

# Largest width (a multiple of GRAIN) that fits, from a first guess; 0 when none. Leaves the
# winning trial's lines in $scratch/best and the smallest failure's in $scratch/limit.
largest_width() {
  local offload=$1 width=$2 fits=0 fails=0 middle step=$(($2 / 4 / grain * grain))
  while [ "$fits" -eq 0 ] || [ "$fails" -eq 0 ]; do
    if trial "$offload" "$width" 2 >"$scratch/lines"; then
      fits=$width
      cp "$scratch/lines" "$scratch/best"
      [ "$fails" -eq 0 ] && width=$((width + step))
    else
      fails=$width
      cp "$scratch/oom" "$scratch/limit"
      [ "$width" -le "$grain" ] && { echo 0; return; }
      [ "$fits" -eq 0 ] && width=$((width > step + grain ? width - step : grain))
    fi
  done
  while [ $((fails - fits)) -gt "$grain" ]; do
    middle=$(((fits + fails) / 2 / grain * grain))
    if trial "$offload" "$middle" 2 >"$scratch/lines"; then
      fits=$middle
      cp "$scratch/lines" "$scratch/best"
    else
      fails=$middle
      cp "$scratch/oom" "$scratch/limit"
    fi
  done
  echo "$fits"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

start=$SECONDS
printf "\n%13s %6s %11s %7s %13s %12s %10s\n" offload width parameters "vs none" \
  "construct MiB" "device MiB" "host MiB"
base_params=""
limits=""
for i in "${!offloads[@]}"; do
  offload=${offloads[$i]}
  width=$(largest_width "$offload" "${guesses[$i]:-256}")
  if [ "$width" -eq 0 ]; then
    printf "%13s %6s\n" "$offload" "none"
    continue
  fi
  read -r _ _ _ params construction device host _ < <(grep '^fit ' "$scratch/best")
  base_params=${base_params:-$params}
  ratio=$(awk -v a="$params" -v b="$base_params" 'BEGIN { printf "%.2f", a / b }')
  printf "%13s %6s %11s %7s %13s %12s %10s\n" "$offload" "$width" "$params" "${ratio}x" \
    "$(mib "$construction")" "$(mib "$device")" "$(mib "$host")"
  limits+="$offload at width $width: $(grep '^peaks ' "$scratch/best")"$'\n'
  limits+="  at width $((width + grain)) or more: $(sed 's/^rank [0-9]*: //' "$scratch/limit")"$'\n'
done
echo
echo "Tag peaks of the largest model, then what was live when the next width passed the limit:"
printf "%s" "$limits"

echo
echo "Step time at width $time_width (mean of steps 2-4, seconds):"
for offload in "${offloads[@]}"; do
  trial "$offload" "$time_width" 4 >"$scratch/lines"
  read -r _ _ _ params _ device host seconds < <(grep '^fit ' "$scratch/lines")
  printf "%13s %11s parameters  %6s s  device %s MiB  host %s MiB\n" "$offload" "$params" \
    "$seconds" "$(mib "$device")" "$(mib "$host")"
done
echo "($((SECONDS - start)) s; load average $(cut -d' ' -f1-3 /proc/loadavg))"
