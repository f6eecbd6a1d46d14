#!/usr/bin/env python3
"""gpt_train's twin in PyTorch: the same GPT-2, data, optimizer and schedule, to compare curves.

Trains the model of INIT (gpt_train's initial weights: `gpt_train --max-steps 0 --save INIT`,
same shape flags) on the token file gpt_train prepared, reading exactly the windows gpt_train's
ranks read (the Philox shuffle of data/text_windows.cpp and data/sampler.cpp, rebuilt here), with
AdamW (decay on the blocks' matrices only, as zt::weight_decay_groups), gradients clipped to a
global norm and DeepSpeed's WarmupDecayLR as ZeroTrain computes it. Prints the training loss,
tokens/s and the validation loss on the same held-out windows, in gpt_train's format.
Usage: gpt_train_pytorch.py --help. Needs torch, numpy and safetensors.
"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter, seed):
    """Word 0 and 1 of Philox 4x32-10 blocks for uint64 counters (core/philox.h)."""
    c = [counter & MASK32, counter >> np.uint64(32), np.zeros_like(counter), np.zeros_like(counter)]
    key0, key1 = np.uint64(seed & 0xFFFFFFFF), np.uint64((seed >> 32) & 0xFFFFFFFF)
    for round_index in range(10):
        if round_index > 0:
            key0 = (key0 + np.uint64(0x9E3779B9)) & MASK32
            key1 = (key1 + np.uint64(0xBB67AE85)) & MASK32
        product0 = np.uint64(0xD2511F53) * c[0]
        product1 = np.uint64(0xCD9E8D57) * c[2]
        c = [(product1 >> np.uint64(32)) ^ c[1] ^ key0, product1 & MASK32,
             (product0 >> np.uint64(32)) ^ c[3] ^ key1, product0 & MASK32]
    return c[0], c[1]


def seeded_permutation(size, seed, epoch):
    """data/sampler.cpp: Fisher-Yates on Philox keyed by (seed, epoch)."""
    order = np.arange(size, dtype=np.int64)
    index = np.arange(size, dtype=np.uint64)
    word0, word1 = philox4x32_10((np.uint64(epoch) << np.uint64(40)) + index, seed)
    bits = (word0 << np.uint64(32)) | word1
    for i in range(size - 1, 0, -1):
        j = int(bits[i] % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
    return order


class Windows:
    """data/text_windows.cpp: rank `rank`'s batches of windows of block + 1 tokens."""

    def __init__(self, tokens, batch, block, seed, ranks, rank):
        self.tokens, self.batch, self.block, self.seed = tokens, batch, block, seed
        self.ranks, self.rank = ranks, rank
        self.windows = len(tokens) // block - 1
        self.batches_per_epoch = self.windows // ranks // batch
        assert self.batches_per_epoch >= 1, "too few tokens for one batch"
        self.epoch, self.mine = -1, None

    def starts(self, step):
        epoch, batch_in_epoch = divmod(step, self.batches_per_epoch)
        if epoch != self.epoch:
            order = seeded_permutation(self.windows, self.seed, epoch)
            total = self.windows // self.ranks * self.ranks  # drop_last
            self.mine, self.epoch = order[:total][self.rank::self.ranks], epoch
        word0, _ = philox4x32_10(np.array([(1 << 62) + epoch], dtype=np.uint64), self.seed)
        shift = int(word0[0] % np.uint64(self.block))
        picked = self.mine[batch_in_epoch * self.batch:(batch_in_epoch + 1) * self.batch]
        return shift + picked * self.block

    def batch_at(self, step):
        rows = [self.tokens[s:s + self.block + 1] for s in self.starts(step)]
        data = torch.from_numpy(np.stack(rows).astype(np.int64))
        return data[:, :-1], data[:, 1:]


class GPT(torch.nn.Module):
    """GPT-2 over a flat dict of HF-named parameters (Conv1D weights [in, out], tied head)."""

    def __init__(self, weights, n_layer, n_head):
        super().__init__()
        self.params = torch.nn.ParameterDict(
            {name.replace(".", "/"): torch.nn.Parameter(value.float().clone())
             for name, value in weights.items() if name != "lm_head.weight"})
        self.n_layer, self.n_head = n_layer, n_head

    def p(self, name):
        return self.params[name.replace(".", "/")]

    def forward(self, idx):
        b, t = idx.shape
        x = self.p("wte.weight")[idx] + self.p("wpe.weight")[:t]
        for i in range(self.n_layer):
            h = f"h.{i}."
            a = F.layer_norm(x, x.shape[-1:], self.p(h + "ln_1.weight"), self.p(h + "ln_1.bias"))
            q, k, v = (a @ self.p(h + "attn.c_attn.weight") + self.p(h + "attn.c_attn.bias")).split(
                x.shape[-1], dim=2)
            heads = lambda z: z.view(b, t, self.n_head, -1).transpose(1, 2)
            y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
            y = y.transpose(1, 2).reshape(b, t, -1)
            x = x + y @ self.p(h + "attn.c_proj.weight") + self.p(h + "attn.c_proj.bias")
            m = F.layer_norm(x, x.shape[-1:], self.p(h + "ln_2.weight"), self.p(h + "ln_2.bias"))
            m = F.gelu(m @ self.p(h + "mlp.c_fc.weight") + self.p(h + "mlp.c_fc.bias"),
                       approximate="tanh")
            x = x + m @ self.p(h + "mlp.c_proj.weight") + self.p(h + "mlp.c_proj.bias")
        x = F.layer_norm(x, x.shape[-1:], self.p("ln_f.weight"), self.p("ln_f.bias"))
        return x @ self.p("wte.weight").t()


def warmup_decay_lr(step, args):
    """optim/lr_schedules.cpp WarmupDecayLR: update `step` (from 0) uses iteration step - 1."""
    iteration, warmup = step - 1, max(2, args.warmup)
    if iteration < 0:
        return 0.0
    if iteration < warmup:
        return args.lr * iteration / warmup
    return args.lr * max(0.0, (args.steps - iteration) / max(1, args.steps - warmup))


def loss_of(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def global_batch(samplers, micro_steps):
    """Every rank's windows of the given micro-steps, as one batch."""
    pairs = [sampler.batch_at(m) for m in micro_steps for sampler in samplers]
    return torch.cat([x for x, _ in pairs]), torch.cat([y for _, y in pairs])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", required=True, help="gpt_train --max-steps 0 --save FILE")
    parser.add_argument("--tokens", required=True, help="gpt_train's token file")
    parser.add_argument("--steps", type=int, default=2000, help="the schedule's length")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this step")
    parser.add_argument("--ranks", type=int, default=1, help="gpt_train's rank count")
    parser.add_argument("--micro-batch", type=int, default=32, help="windows per rank per micro-step")
    parser.add_argument("--accumulation", type=int, default=1, help="micro-steps per step")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.99))
    parser.add_argument("--eps", type=float, default=1e-8)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--eval-interval", type=int, default=200)
    parser.add_argument("--eval-iters", type=int, default=20)
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    weights = load_file(args.init)
    if "wte.weight" not in weights:
        parser.error(f"--init {args.init}: not a GPT-2 layout model (no wte.weight); "
                     "the Llama layout is not mirrored here")
    n_layer = 1 + max(int(name.split(".")[1]) for name in weights if name.startswith("h."))
    header = np.fromfile(args.tokens, dtype=np.uint8, count=48)
    assert header[:8].tobytes() == b"ZTTOKENS", f"{args.tokens}: not a token file"
    counts = header[16:32].view(np.uint64)
    tokens = np.memmap(args.tokens, dtype="<u2", mode="r", offset=48)
    train, validation = tokens[:counts[0]], tokens[counts[0]:counts[0] + counts[1]]
    block = weights["wpe.weight"].shape[0]
    with safe_open(args.init, "pt") as init_file:
        n_head = int(init_file.metadata()["n_head"])
    model = GPT(weights, n_layer, n_head)
    decay = [p for name, p in model.params.items()
             if p.dim() >= 2 and not name.startswith(("wte", "wpe"))]
    no_decay = [p for name, p in model.params.items()
                if not (p.dim() >= 2 and not name.startswith(("wte", "wpe")))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=0.0, betas=tuple(args.betas), eps=args.eps)
    window = dict(batch=args.micro_batch, block=block, seed=args.seed, ranks=args.ranks)
    train_windows = [Windows(train, rank=r, **window) for r in range(args.ranks)]
    validation_windows = [Windows(validation, rank=r, **window) for r in range(args.ranks)]
    eval_iters = min(args.eval_iters, validation_windows[0].batches_per_epoch)
    tokens_per_step = args.micro_batch * args.accumulation * args.ranks * block

    def validation_loss():
        with torch.no_grad():
            losses = [loss_of(model, *global_batch(validation_windows, [i])).item()
                      for i in range(eval_iters)]
        return sum(losses) / len(losses)

    stop = args.max_steps if args.max_steps is not None else args.steps
    print(f"model: gpt2 {n_layer} layers, {n_head} heads, width {weights['wte.weight'].shape[1]}, "
          f"context {block} (PyTorch {torch.__version__}, {torch.get_num_threads()} threads), "
          f"{tokens_per_step} tokens a step", flush=True)
    interval_loss, interval_steps, interval_seconds, total_seconds = 0.0, 0, 0.0, 0.0
    for step in range(stop):
        start = time.perf_counter()
        micro = range(step * args.accumulation, (step + 1) * args.accumulation)
        loss = loss_of(model, *global_batch(train_windows, micro))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        for group in optimizer.param_groups:
            group["lr"] = warmup_decay_lr(step, args)
        optimizer.step()
        seconds = time.perf_counter() - start
        interval_seconds += seconds
        total_seconds += seconds
        interval_loss += loss.item()
        interval_steps += 1
        done = step + 1
        if done % args.log_interval == 0:
            print(f"step {done}/{args.steps}: loss {interval_loss / interval_steps:.4f}, "
                  f"lr {warmup_decay_lr(done, args):.3g}, "
                  f"{interval_steps * tokens_per_step / interval_seconds:.0f} tokens/s", flush=True)
            interval_loss, interval_steps, interval_seconds = 0.0, 0, 0.0
        if done % args.eval_interval == 0 or done == stop:
            print(f"step {done}: validation loss {validation_loss():.4f}", flush=True)
    if stop > 0:
        print(f"trained {stop} steps in {total_seconds:.1f} s: "
              f"{stop * tokens_per_step / total_seconds:.0f} tokens/s", flush=True)


if __name__ == "__main__":
    main()
