#!/usr/bin/env python3
"""PyTorch reference for bench/sparse_attention: torch.nn.functional.scaled_dot_product_attention
given each layout (its DeepSpeed defaults, block 16, bidirectional) as a dense boolean mask, on
the same shapes (B=1, H=8, E=64, f32) and timing rule (best of --repeats runs after one
warm-up). A dense mask cannot skip anything: PyTorch's time stays the dense time whatever the
layout's density, which is what a block-sparse kernel is for.

Optional and never run by make or CI: PyTorch is not a dependency of ZeroTrain. To use it,
install torch in a virtual environment outside the repository, then

    python3 bench/sparse_attention_pytorch.py --clock cpu

Output: one line "T mode density forward_ms forward_backward_ms" per case; '#' starts a comment.
The layouts are written out here from the rules in docs/sparse_attention.md (no random blocks:
their default count is 0).
"""
import argparse
import time

import torch
import torch.nn.functional as F


def layout(mode, blocks):
    """[blocks, blocks] bool: the default layout of `mode`, bidirectional."""
    active = torch.zeros(blocks, blocks, dtype=torch.bool)
    if mode == "dense":
        active[:] = True
    elif mode in ("fixed", "variable"):
        for start in range(0, blocks, 4):  # windows of 4 blocks
            active[start:start + 4, start:start + 4] = True
        if mode == "fixed":  # the last block of each window is global (a full column)
            for start in range(0, blocks, 4):
                active[:, min(start + 3, blocks - 1)] = True
        else:  # global block 0: a full column
            active[:, 0] = True
    else:  # bigbird, bslongformer: sliding window of 3, block 0 global (row and column)
        for row in range(blocks):
            active[row, max(0, row - 1):row + 2] = True
        active[0, :] = True
        active[:, 0] = True
    return active


def best_ms(body, repeats, clock):
    body()
    times = []
    for _ in range(repeats):
        start = clock()
        body()
        times.append(clock() - start)
    return min(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="1024,2048,4096,8192")
    parser.add_argument("--modes", default="fixed,variable,bigbird,bslongformer,dense")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall, or cpu: the process's CPU time (for a loaded machine)")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    block = 16
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} time")
    print("# T mode density forward_ms forward_backward_ms")
    for length in [int(x) for x in args.lengths.split(",")]:
        generator = torch.Generator().manual_seed(0)
        q, k, v = (torch.rand(1, args.heads, length, 64, generator=generator).requires_grad_()
                   for _ in range(3))
        for mode in args.modes.split(","):
            blocks = layout(mode, length // block)
            mask = blocks.repeat_interleave(block, 0).repeat_interleave(block, 1)

            def forward():
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

            def forward_backward():
                F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
                for x in (q, k, v):
                    x.grad = None

            print(f"{length} {mode} {blocks.float().mean().item():.3f} "
                  f"{best_ms(forward, args.repeats, clock):.2f} "
                  f"{best_ms(forward_backward, args.repeats, clock):.2f}", flush=True)


if __name__ == "__main__":
    main()
