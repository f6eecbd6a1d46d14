#!/usr/bin/env bash
# Time per training step at ZeRO stages 0-3 on N ranks (8 by default), each relative to stage 0
# in the same run (bench/zero_step: one mpirun job, the stages stepped in turn). Target (the ZeRO
# issue): stage 3 within 1.5x of stage 0. With more ranks than cores the ranks share the cores,
# so the times include oversubscription; the ratios compare stages under the same conditions.
#
# Settings (environment): RANKS (8), WIDTH (1024), DEPTH hidden layers (4), BATCH samples per
# rank (32), ROUNDS timed steps per stage (10), OVERLAP (-1: DeepSpeed's default, on at stage 3
# only; 0 or 1: that for every stage).
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${RANKS:-8}
width=${WIDTH:-1024}
depth=${DEPTH:-4}
batch=${BATCH:-32}
rounds=${ROUNDS:-10}
overlap=${OVERLAP:--1}
mpirun_command=(mpirun --oversubscribe --bind-to none --mca btl self,vader
                --mca mpi_yield_when_idle 1 -x ZT_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpirun_command+=(--allow-run-as-root)
cores=$(nproc)
echo "zero_step: $ranks ranks on $cores cores$([ "$ranks" -gt "$cores" ] && echo " (oversubscribed: ranks share cores)"),"
echo "  MLP 784-(${width} x ${depth})-10, Adam, $batch samples per rank, median of $rounds steps per"
echo "  stage after 2 warm-up steps, stages interleaved step by step, overlap_comm $([ "$overlap" -lt 0 ] && echo "default (on at stage 3 only)" || echo "$overlap")"
echo "  load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
results=$("${mpirun_command[@]}" -np "$ranks" bench/zero_step --width "$width" --depth "$depth" \
          --batch "$batch" --rounds "$rounds" --overlap "$overlap")
printf "%5s %12s %12s %10s\n" stage parameters "ms/step" "vs st.0"
base=""
stage3_ratio=""
while read -r stage ms params; do
  base=${base:-$ms}
  ratio=$(awk -v a="$ms" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
  [ "$stage" -eq 3 ] && stage3_ratio=$ratio
  printf "%5s %12s %12s %9sx\n" "$stage" "$params" "$ms" "$ratio"
done <<<"$results"
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
verdict=$(awk -v r="$stage3_ratio" 'BEGIN { print (r <= 1.5 ? "met" : "NOT met") }')
echo "target: stage 3 within 1.5x of stage 0 at N=$ranks: ${stage3_ratio}x, $verdict"
