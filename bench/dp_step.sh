#!/usr/bin/env bash
# Time per data-parallel training step at N = 1, 2, 4, 8 ranks relative to N = 1, with and
# without overlap_comm, in one run (bench/dp_step under mpirun for each point). A fixed
# micro-batch per rank: on a machine with fewer cores than ranks the ratio also measures
# oversubscription, so say how many cores the numbers came from.
set -euo pipefail
cd "$(dirname "$0")/.."
mpirun_command=(mpirun --oversubscribe --bind-to none --mca btl self,vader
                --mca mpi_yield_when_idle 1 -x ZT_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpirun_command+=(--allow-run-as-root)
stage=${STAGE:-0}
echo "dp_step: ZeRO stage $stage, MLP 784-1024-1024-10, 32 samples per rank per step, $(nproc) cores"
printf "%5s %8s %12s %10s\n" ranks overlap "ms/step" "vs N=1"
for overlap in 0 1; do
  base=""
  for ranks in 1 2 4 8; do
    read -r n s o ms params < <("${mpirun_command[@]}" -np "$ranks" bench/dp_step --stage "$stage" \
                                --overlap "$overlap" --steps 12)
    base=${base:-$ms}
    printf "%5s %8s %12s %10.2f\n" "$n" "$o" "$ms" "$(awk -v a="$ms" -v b="$base" 'BEGIN { print a / b }')"
  done
done
