#!/usr/bin/env python3
"""bench/inference's peer: decode tokens/s at batch 1 of the same GPT-2 (models/gpt.h's layout:
GELU-tanh, LayerNorm, the head tied to wte) in PyTorch with a KV cache, in fp32 and bf16: a
prompt of --prompt tokens in one forward, then --decode one-token steps, timed, the fastest of
--repeats runs. Prints one line "DTYPE TOKENS_PER_S" per dtype (bench/inference --torch FILE
reads them) after a '#' line naming the version and threads.

Optional: needs PyTorch 2.x (/work/peer-venv has it); make test never runs it.
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

    def forward(self, x, cache):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        # A single new token sees every cached key; a whole prompt is causal.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None and T > 1)
        x = x + self.attn_c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")), (k, v)


class GPT(nn.Module):
    def __init__(self, vocab, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)

    def forward(self, idx, caches):
        past = 0 if caches[0] is None else caches[0][0].shape[2]
        x = self.wte(idx) + self.wpe(torch.arange(past, past + idx.shape[1]))
        new_caches = []
        for block, cache in zip(self.h, caches):
            x, kv = block(x, cache)
            new_caches.append(kv)
        return self.ln_f(x)[:, -1] @ self.wte.weight.T, new_caches


def decode_rate(model, args):
    # cpu: the process's CPU seconds, which a neighbour's load leaves nearly unchanged at 1 thread.
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    prompt = torch.randint(0, 256, (1, args.prompt))
    rates = []
    with torch.inference_mode():
        for repeat in range(args.repeats + 1):  # the first warms up
            logits, caches = model(prompt, [None] * args.n_layer)
            token = logits.argmax(-1, keepdim=True)
            start = clock()
            for _ in range(args.decode):
                logits, caches = model(token, caches)
                token = logits.argmax(-1, keepdim=True)
            if repeat > 0:
                rates.append(args.decode / (clock() - start))
    return max(rates)  # the fastest run: the one a loaded machine disturbed least


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=8)
    parser.add_argument("--n-embd", type=int, default=512)
    parser.add_argument("--block-size", type=int, default=1088)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    torch.manual_seed(1)
    torch.set_num_threads(args.threads)
    print(f"# pytorch {torch.__version__} threads {args.threads} clock {args.clock}")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model = GPT(256, args.block_size, args.n_layer, args.n_head, args.n_embd).to(dtype).eval()
        print(f"{name} {decode_rate(model, args):.1f}", flush=True)


if __name__ == "__main__":
    main()
