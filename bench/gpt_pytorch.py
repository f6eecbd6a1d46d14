#!/usr/bin/env python3
"""bench/gpt's peer: tokens/s of training steps (forward, backward, AdamW) of the same GPT-2
(models/gpt.h's layout: GELU-tanh, LayerNorm, the head tied to wte) in PyTorch, at the same
batch and sequence, at 1 and 2 threads. (The training twin of gpt_train is
bench/gpt_train_pytorch.py.)

Optional: needs PyTorch 2.x (../shared/tools/peer-venv DIR makes a venv with it); make test
never runs it.
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.attn_c_proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.mlp_c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T  # lm_head tied to wte


def speed(args):
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(args.seed)
        model = GPT(256, args.block_size, args.n_layer, args.n_head, args.n_embd)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randint(0, 256, (args.batch, args.block_size))
        timings = []
        for step in range(args.warmup + args.steps):
            begin = time.perf_counter()
            loss = F.cross_entropy(model(x).reshape(-1, 256), x.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step >= args.warmup:
                timings.append(time.perf_counter() - begin)
        median = sorted(timings)[len(timings) // 2]
        print(f"pytorch {torch.__version__} threads {threads}: "
              f"{args.batch * args.block_size / median:.0f} tokens/s "
              f"(median of {len(timings)} steps, {median * 1e3:.1f} ms a step)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-layer", type=int, default=6)
    parser.add_argument("--n-head", type=int, default=6)
    parser.add_argument("--n-embd", type=int, default=384)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch", type=int, default=8, help="windows a step")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps")
    speed(parser.parse_args())


if __name__ == "__main__":
    main()
