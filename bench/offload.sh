#!/usr/bin/env bash
# The largest GPT-2-like model (parameters) that trains at ZeRO stage 3 under a per-rank DEVICE
# limit, with no offload, with CPU offload and with NVMe offload (optimizer state and
# parameters), built inside PartitionedInit so that no rank ever holds it whole. Target: NVMe
# offload trains a model >= 10x larger than stage 3 alone (LIMIT_MIB 64, RANKS 8).
#
# Each (offload, width) trial is its own mpirun job of bench/offload: a rank out of device
# memory ends the job, so nothing of a failed trial survives into the next. Per offload the
# width (n_embd) doubles until a trial fails, then a bisection narrows it to a multiple of 8.
# An offload the engine rejects is reported as unsupported.
#
# Settings (environment): LIMIT_MIB (64), RANKS (8), LAYERS (8), BATCH sequences of 32 tokens per
# rank (2), NVME_PATH (a fresh folder under /tmp), OFFLOADS ("none cpu nvme").
set -euo pipefail
cd "$(dirname "$0")/.."
limit_mib=${LIMIT_MIB:-64}
ranks=${RANKS:-8}
layers=${LAYERS:-8}
batch=${BATCH:-2}
offloads=${OFFLOADS:-none cpu nvme}
mpirun_command=(mpirun --oversubscribe --bind-to none --mca btl self,vader
                --mca mpi_yield_when_idle 1 -x ZT_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpirun_command+=(--allow-run-as-root)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
nvme_path=${NVME_PATH:-$scratch/nvme}
mkdir -p "$nvme_path"

echo "offload: $ranks ranks, a device limit of $limit_mib MiB per rank from construction on,"
echo "  GPT-2 layout ($layers blocks, 4 heads, vocabulary 256, 32 tokens), Adam, $batch sequences per"
echo "  rank, 2 steps per trial, stage 3 with threshold 0, built inside PartitionedInit; $(nproc) cores"

# One trial: prints "fit ..." and returns 0, returns 1 when a rank ran out of device memory,
# 2 when the engine rejects the offload (the line is left in $scratch/out).
trial() {
  local offload=$1 width=$2 status=0
  timeout 900 "${mpirun_command[@]}" -np "$ranks" bench/offload --offload "$offload" \
    --width "$width" --layers "$layers" --batch "$batch" --limit-mib "$limit_mib" \
    --nvme-path "$nvme_path" >"$scratch/out" 2>"$scratch/err" || status=$?
  if [ "$status" -eq 0 ] && grep -q '^fit ' "$scratch/out"; then
    grep '^fit ' "$scratch/out"
    return 0
  fi
  if [ "$status" -eq 0 ] && grep -q '^unsupported ' "$scratch/out"; then return 2; fi
  if [ "$status" -ne 0 ] && grep -q 'out of memory on cpu' "$scratch/err"; then return 1; fi
  echo "offload: $offload width $width failed for a reason other than memory (status $status):" >&2
  cat "$scratch/out" "$scratch/err" >&2
  exit 1
}

# Largest width (a multiple of 8) that fits, from a first guess; 0 when none; -1 unsupported.
# Leaves the winning trial's line in $scratch/best.
largest_width() {
  local offload=$1 width=$2 fits=0 fails=0 middle status
  while :; do
    status=0
    trial "$offload" "$width" >"$scratch/line" || status=$?
    [ "$status" -eq 2 ] && { echo -1; return; }
    if [ "$status" -eq 0 ]; then
      fits=$width
      cp "$scratch/line" "$scratch/best"
      [ "$fails" -gt 0 ] && break
      width=$((width * 2))
    else
      fails=$width
      [ "$fits" -gt 0 ] && break
      [ "$width" -le 8 ] && { echo 0; return; }
      width=$((width / 2))
    fi
  done
  while [ $((fails - fits)) -gt 8 ]; do
    middle=$(((fits + fails) / 16 * 8))
    if trial "$offload" "$middle" >"$scratch/line"; then
      fits=$middle
      cp "$scratch/line" "$scratch/best"
    else
      fails=$middle
    fi
  done
  echo "$fits"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

start=$SECONDS
printf "\n%7s %7s %12s %8s %18s %15s %13s\n" offload width parameters "vs none" \
  "construction MiB" "device peak MiB" "host peak MiB"
guess=64
base_params=""
for offload in $offloads; do
  width=$(largest_width "$offload" "$guess")
  if [ "$width" -eq -1 ]; then
    printf "%7s %s\n" "$offload" "unsupported: $(sed 's/^unsupported [a-z]*: //' "$scratch/out")"
    continue
  fi
  if [ "$width" -eq 0 ]; then
    printf "%7s %7s\n" "$offload" "none"
    continue
  fi
  read -r _ _ _ params construction device host <"$scratch/best"
  base_params=${base_params:-$params}
  ratio=$(awk -v a="$params" -v b="$base_params" 'BEGIN { printf "%.2f", a / b }')
  printf "%7s %7s %12s %8s %18s %15s %13s\n" "$offload" "$width" "$params" "${ratio}x" \
    "$(mib "$construction")" "$(mib "$device")" "$(mib "$host")"
  guess=$width
done
echo "($((SECONDS - start)) s; load average $(cut -d' ' -f1-3 /proc/loadavg))"
