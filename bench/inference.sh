#!/usr/bin/env bash
# Inference figures of a GPT-2 model (4 layers, 8 heads, width 512, byte vocabulary): PyTorch's
# batch-1 decode tokens/s in fp32 and bf16 (bench/inference_pytorch.py, if PYTHON has torch),
# then bench/inference with them for comparison. Both run on one thread and, by default, time
# with the process's CPU clock (CLOCK=cpu) so that a shared machine's load does not land in the
# figures; CLOCK=wall times wall seconds. Extra arguments go to bench/inference.
#
# Settings (environment): PYTHON (a python with torch 2.x; /work/peer-venv/bin/python if it
# exists, else python3), CLOCK (cpu), REPEATS (3; the fastest run counts).
set -euo pipefail
cd "$(dirname "$0")/.."
clock=${CLOCK:-cpu}
repeats=${REPEATS:-3}
python=${PYTHON:-$([ -x /work/peer-venv/bin/python ] && echo /work/peer-venv/bin/python || echo python3)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "inference: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
torch_flags=()
if "$python" -c "import torch" 2>/dev/null; then
  "$python" bench/inference_pytorch.py --clock "$clock" --repeats "$repeats" | tee "$work/torch"
  torch_flags=(--torch "$work/torch")
else
  echo "bench/inference.sh: $python cannot import torch: no PyTorch figures" >&2
fi
ZT_NUM_THREADS=1 OMP_NUM_THREADS=1 bench/inference --clock "$clock" --repeats "$repeats" \
  "${torch_flags[@]}" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
