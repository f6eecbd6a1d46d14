#!/usr/bin/env python3
"""bench/host_adam's peer: parameters/s of torch.optim.AdamW's step on CPU tensors, its default
implementation (the per-parameter loop of tensor operations) and fused=True, on the same
parameter count, thread counts and hyperparameters (lr 1e-3, betas 0.9/0.999, eps 1e-8,
weight decay 0.01; the timed steps are past the first few). One flat parameter, as the offload
engine's partition is. The two take turns step by step, so that a neighbour's load on a shared
machine falls on both alike. Prints one line per (threads, case):
"threads case ms Mparams/s GB/s" (GB/s counts the update's 28 bytes per parameter).

Optional: needs PyTorch 2.x; make test never runs it.
"""
import argparse
import statistics
import time

import torch


def make_optimizer(count, fused):
    param = torch.nn.Parameter(torch.full((count,), 0.5))
    param.grad = torch.full((count,), 0.01)
    optimizer = torch.optim.AdamW([param], lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.01, fused=fused)
    return optimizer


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=50_000_000)
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=9, help="timed steps per case (median)")
    args = parser.parse_args()
    print(f"host_adam_pytorch: torch {torch.__version__}, {args.params} parameters, "
          f"{args.rounds} timed steps (median)")
    print(f"{'threads':>7} {'case':<22} {'ms':>9} {'Mparams/s':>10} {'GB/s':>8}")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        cases = {"torch_adamw_default": make_optimizer(args.params, fused=False),
                 "torch_adamw_fused": make_optimizer(args.params, fused=True)}
        for _ in range(3):  # warm-up: the state is created, and the step is past the first
            for optimizer in cases.values():
                optimizer.step()
        times = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, optimizer in cases.items():
                start = time.perf_counter()
                optimizer.step()
                times[name].append(time.perf_counter() - start)
        for name, samples in times.items():
            seconds = statistics.median(samples)
            print(f"{threads:>7} {name:<22} {seconds * 1e3:>9.2f} "
                  f"{args.params / seconds / 1e6:>10.0f} {28 * args.params / seconds / 1e9:>8.2f}",
                  flush=True)
        del cases


if __name__ == "__main__":
    main()
