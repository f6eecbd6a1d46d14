#!/usr/bin/env python3
"""The peer of apps/gpt_train and bench/gpt: the same GPT-2 (models/gpt.h's layout and names) in
PyTorch, trained with the same ds_config.json hyperparameters on the same token file, and timed
at the same batch, sequence and thread count.

Optional: needs PyTorch 2.x and safetensors (../shared/tools/peer-venv DIR makes a venv with
them); make test never runs it.

  train: trains from a token file that gpt_train prepared (its --data-dir), starting from the
         weights in --init (a Hugging Face-layout safetensors file; written here when missing,
         so that gpt_train --init-from FILE starts from the very same weights), with AdamW, the
         decay/no_decay groups, gradient clipping and the WarmupDecayLR schedule of
         --deepspeed_config; prints the validation loss (every non-overlapping window of the
         held-out split) at each --eval-interval and the training tokens/s.
  speed: tokens/s of training steps (forward, backward, AdamW) at 1 and 2 threads.
"""
import argparse
import json
import math
import os
import re
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TOKEN_FILE_MAGIC = b"ZTTOKENS"
TOKEN_FILE_HEADER = struct.Struct("<8sIIQQQQ")  # magic, version, vocab, 4 counts: 48 bytes


def read_token_file(path):
    """(vocab, train tokens, validation tokens) of data/text_token_file.h's format."""
    with open(path, "rb") as f:
        header = f.read(TOKEN_FILE_HEADER.size)
    magic, version, vocab, train, validation, _, _ = TOKEN_FILE_HEADER.unpack(header)
    if magic != TOKEN_FILE_MAGIC or version != 1:
        sys.exit(f"{path}: not a ZeroTrain token file (version 1)")
    tokens = np.memmap(path, dtype="<u2", mode="r", offset=TOKEN_FILE_HEADER.size)
    if tokens.size != train + validation:
        sys.exit(f"{path}: holds {tokens.size} tokens, its header says {train + validation}")
    return vocab, tokens[:train], tokens[train:]


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

    # Hugging Face's GPT-2 names; its Conv1D stores [in, out], nn.Linear [out, in].
    HF_NAMES = [("attn.c_attn", "c_attn"), ("attn.c_proj", "attn_c_proj"),
                ("mlp.c_fc", "c_fc"), ("mlp.c_proj", "mlp_c_proj")]

    def hf_state(self):
        state = {}
        for name, tensor in self.state_dict().items():
            hf_name = name
            for hf, ours in self.HF_NAMES:
                hf_name = re.sub(rf"\.{ours}\.", f".{hf}.", hf_name)
            is_conv1d = hf_name != name and name.endswith(".weight")
            state[hf_name] = (tensor.T if is_conv1d else tensor).contiguous()
        return state

    def load_hf_state(self, state):
        ours = {}
        for hf_name, tensor in state.items():
            if hf_name.endswith(".attn.bias") or hf_name == "lm_head.weight":
                continue  # GPT-2's causal-mask buffers; the tied head
            name = hf_name
            for hf, mine in self.HF_NAMES:
                name = name.replace(f".{hf}.", f".{mine}.")
            ours[name] = tensor.T if name != hf_name and name.endswith(".weight") else tensor
        self.load_state_dict(ours, strict=True)


def gpt2_init_(model, n_layer, generator):
    """GPT-2's initialisation: N(0, 0.02), residual projections N(0, 0.02/sqrt(2 n_layer)),
    zero biases, unit LayerNorms."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif ".ln_" in name or name.startswith("ln_f"):
            nn.init.ones_(p)
        else:
            std = 0.02 / math.sqrt(2 * n_layer) if "c_proj" in name else 0.02
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=generator) * std)


def decay_groups(model, weight_decay):
    """models' rule (dist/param_groups.h): matrices decay, except embeddings and norms."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_embedding = name.startswith("wte") or name.startswith("wpe")
        (decay if p.dim() >= 2 and not is_embedding else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def warmup_decay_lr(config, iteration):
    """WarmupDecayLR (linear warmup) at the schedule's iteration; step k runs at k - 1."""
    p = config["scheduler"]["params"]
    warmup = max(2, p.get("warmup_num_steps", 1000))
    if iteration < 0:
        gamma = 0.0
    elif iteration < warmup:
        gamma = iteration / warmup
    else:
        total = p["total_num_steps"]
        gamma = max(0.0, (total - iteration) / max(1, total - warmup))
    lo, hi = p.get("warmup_min_lr", 0.0), p.get("warmup_max_lr", 0.001)
    return lo + (hi - lo) * gamma


def strip_json_comments(text):
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def validation_loss(model, tokens, block_size, batch):
    """The mean loss over every non-overlapping window of the held-out tokens."""
    count = (len(tokens) - 1) // block_size
    starts = [i * block_size for i in range(count)]
    total = 0.0
    with torch.no_grad():
        for first in range(0, count, batch):
            chunk = starts[first:first + batch]
            x = torch.stack([torch.from_numpy(tokens[s:s + block_size].astype(np.int64))
                             for s in chunk])
            y = torch.stack([torch.from_numpy(tokens[s + 1:s + 1 + block_size].astype(np.int64))
                             for s in chunk])
            logits = model(x)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                     reduction="sum").item()
    return total / (count * block_size)


def train(args):
    from safetensors.torch import load_file, save_file
    torch.set_num_threads(args.threads)
    with open(args.deepspeed_config) as f:
        config = json.loads(strip_json_comments(f.read()))
    vocab, train_tokens, validation_tokens = read_token_file(args.token_file)
    model = GPT(vocab, args.block_size, args.n_layer, args.n_head, args.n_embd)
    if os.path.exists(args.init):
        model.load_hf_state(load_file(args.init))
    else:
        gpt2_init_(model, args.n_layer, torch.Generator().manual_seed(args.seed))
        save_file(model.hf_state(), args.init + ".partial", metadata={"format": "pt"})
        os.replace(args.init + ".partial", args.init)
        print(f"wrote the initial weights to {args.init}")
    opt = config["optimizer"]["params"]
    optimizer = torch.optim.AdamW(decay_groups(model, opt.get("weight_decay", 0.01)),
                                  lr=opt["lr"], betas=tuple(opt.get("betas", (0.9, 0.999))),
                                  eps=opt.get("eps", 1e-8))
    batch = config["train_batch_size"]
    clip = config.get("gradient_clipping", 0.0)
    generator = np.random.default_rng(args.seed)
    start, tokens_seen = time.perf_counter(), 0
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = warmup_decay_lr(config, step - 2)
        starts = generator.integers(0, len(train_tokens) - args.block_size - 1, batch)
        x = torch.from_numpy(np.stack([train_tokens[s:s + args.block_size] for s in starts])
                             .astype(np.int64))
        y = torch.from_numpy(np.stack([train_tokens[s + 1:s + 1 + args.block_size]
                                       for s in starts]).astype(np.int64))
        loss = F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        tokens_seen += x.numel()
        if step % args.eval_interval == 0 or step == args.steps:
            elapsed = time.perf_counter() - start
            val = validation_loss(model, validation_tokens, args.block_size, batch)
            print(f"step {step}: train loss {loss.item():.4f}, validation loss {val:.4f}, "
                  f"{tokens_seen / elapsed:.0f} tokens/s", flush=True)
            start, tokens_seen = time.perf_counter(), 0


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
    parser.add_argument("mode", choices=["train", "speed"])
    parser.add_argument("--token-file", help="train: the token file gpt_train prepared")
    parser.add_argument("--deepspeed_config", help="train: the ds_config.json gpt_train used")
    parser.add_argument("--init", help="train: initial weights (HF GPT-2 safetensors)")
    parser.add_argument("--n-layer", type=int, default=6)
    parser.add_argument("--n-head", type=int, default=6)
    parser.add_argument("--n-embd", type=int, default=384)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-interval", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch", type=int, default=8, help="speed: windows a step")
    parser.add_argument("--warmup", type=int, default=2, help="speed: untimed steps")
    args = parser.parse_args()
    if args.mode == "train":
        if not (args.token_file and args.deepspeed_config and args.init):
            parser.error("train needs --token-file, --deepspeed_config and --init")
        train(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
