#!/usr/bin/env bash
# The largest MLP (by width) that can take training steps at each ZeRO stage under a per-rank
# memory limit, at N = 8 ranks, and the parameter count of each relative to stage 0. Target
# (the ZeRO issue): stage 3 holds at least 5x the parameters of stage 0.
#
# Each (stage, width) trial is its own mpirun job of bench/zero_capacity: a rank that runs out
# of memory ends the job (dist::run_distributed_main), so a failure can never leave other ranks
# waiting in a collective, and nothing of a failed trial survives into the next. Per stage the
# width doubles until a trial fails, then a bisection narrows it to about 2 %.
#
# Settings (environment): LIMIT_MIB (64), RANKS (8), DEPTH hidden layers (16: ZeRO pays off with depth; at 4 the gathered layer and its gradient buffer are a large share of the model), BATCH samples per
# rank (8), PREFETCH stage-3 prefetch bucket in elements (0: off).
set -euo pipefail
cd "$(dirname "$0")/.."
limit_mib=${LIMIT_MIB:-64}
ranks=${RANKS:-8}
depth=${DEPTH:-16}
batch=${BATCH:-8}
prefetch=${PREFETCH:-0}
mpirun_command=(mpirun --oversubscribe --bind-to none --mca btl self,vader
                --mca mpi_yield_when_idle 1 -x ZT_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpirun_command+=(--allow-run-as-root)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "zero_capacity: $ranks ranks, a limit of $limit_mib MiB per rank, MLP 784-(W x $depth)-10, Adam,"
echo "  $batch samples per rank, 2 steps per trial, stage-3 prefetch $prefetch elements, $(nproc) cores"
echo "  The limit covers every byte of the accounted allocator from the end of engine construction"
echo "  on (parameters, gradients, optimizer state, activations, communication buffers); not"
echo "  construction itself, which builds the whole model on every rank at every stage (stage 3"
echo "  built inside PartitionedInit is bench/offload's measure), nor MPI's own memory."

# Runs one trial. Prints bench/zero_capacity's "fit ..." line and returns 0 if it fits; returns 1
# if a rank ran out of memory; anything else is a broken benchmark and stops the script.
trial() {
  local stage=$1 width=$2 status=0
  timeout 600 "${mpirun_command[@]}" -np "$ranks" bench/zero_capacity --stage "$stage" \
    --width "$width" --depth "$depth" --batch "$batch" --limit-mib "$limit_mib" \
    --prefetch "$prefetch" >"$scratch/out" 2>"$scratch/err" || status=$?
  if [ "$status" -eq 0 ] && grep -q '^fit ' "$scratch/out"; then
    grep '^fit ' "$scratch/out"
    return 0
  fi
  if [ "$status" -ne 0 ] && grep -q 'out of memory on cpu' "$scratch/err"; then return 1; fi
  echo "zero_capacity: stage $stage width $width failed for a reason other than memory (status $status):" >&2
  cat "$scratch/out" "$scratch/err" >&2
  exit 1
}

# Largest width that fits at `stage`, starting from a width believed to fit ($2). Leaves the
# winning trial's "fit ..." line in $scratch/best.
largest_width() {
  local stage=$1 fits=0 fails=0 width=$2 middle step
  while :; do
    if trial "$stage" "$width" >"$scratch/line"; then
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
  step=$((fits / 50 > 8 ? fits / 50 : 8))
  while [ $((fails - fits)) -gt "$step" ]; do
    middle=$(((fits + fails) / 2))
    if trial "$stage" "$middle" >"$scratch/line"; then
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
printf "\n%5s %7s %12s %8s %10s   %s\n" stage width parameters "vs st.0" "peak MiB" \
  "step peak by kind (MiB): param grad optim_state activation activation_offload comm other"
guess=128
base_params=""
stage3_ratio=""
for stage in 0 1 2 3; do
  width=$(largest_width "$stage" "$guess")
  if [ "$width" -eq 0 ]; then
    printf "%5s %7s\n" "$stage" "none"
    continue
  fi
  read -r _ _ _ params peak param grad optim activation offload comm other <"$scratch/best"
  base_params=${base_params:-$params}
  ratio=$(awk -v a="$params" -v b="$base_params" 'BEGIN { printf "%.2f", a / b }')
  [ "$stage" -eq 3 ] && stage3_ratio=$ratio
  printf "%5s %7s %12s %8s %10s   %s %s %s %s %s %s %s\n" "$stage" "$width" "$params" "${ratio}x" \
    "$(mib "$peak")" "$(mib "$param")" "$(mib "$grad")" "$(mib "$optim")" "$(mib "$activation")" \
    "$(mib "$offload")" "$(mib "$comm")" "$(mib "$other")"
  guess=$width  # a later stage holds at least as much, so its search starts here
done
echo "($((SECONDS - start)) s; load average $(cut -d' ' -f1-3 /proc/loadavg))"
if [ -n "$stage3_ratio" ]; then
  verdict=$(awk -v r="$stage3_ratio" 'BEGIN { print (r >= 5 ? "met" : "NOT met") }')
  echo "target: stage 3 holds >= 5x the parameters of stage 0 at N=$ranks: ${stage3_ratio}x, $verdict"
fi
