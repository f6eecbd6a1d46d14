#!/usr/bin/env python3
"""PyTorch reference for bench/attention: torch.nn.functional.scaled_dot_product_attention on
the same shapes (B=1, H=6, E=64, causal, f32) and timing rule (best of --repeats runs after
one warm-up), so that `bench/attention --torch FILE` prints our times next to PyTorch's.

Optional and never run by make or CI: PyTorch is not a dependency of ZeroTrain. To use it,
install torch in a virtual environment outside the repository, then

    python3 bench/attention_pytorch.py > /tmp/torch_attention.txt
    ./bench/attention --torch /tmp/torch_attention.txt

Output: one line "T threads forward_ms forward_backward_ms" per case; '#' starts a comment.
"""
import argparse
import time

import torch
import torch.nn.functional as F


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
    parser.add_argument("--lengths", default="256,1024,4096")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall, or cpu: the process's CPU time (for a loaded machine)")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"# torch {torch.__version__}, scaled_dot_product_attention, B=1 H={args.heads} "
          f"E={args.head_dim} causal f32, {args.clock} time")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for length in [int(t) for t in args.lengths.split(",")]:
            shape = (1, args.heads, length, args.head_dim)
            generator = torch.Generator().manual_seed(0)
            q, k, v = (torch.rand(shape, generator=generator).requires_grad_() for _ in range(3))
            repeats = args.repeats if length >= 4096 else 4 * args.repeats

            def forward():
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v, is_causal=True)

            def forward_backward():
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                out.sum().backward()
                q.grad = k.grad = v.grad = None

            print(f"{length} {threads} {best_ms(forward, repeats, clock):.4f} "
                  f"{best_ms(forward_backward, repeats, clock):.4f}", flush=True)


if __name__ == "__main__":
    main()
