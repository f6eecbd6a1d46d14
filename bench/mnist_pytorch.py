#!/usr/bin/env python3
"""PyTorch reference for bench/mnist: the same two networks, data, batch size, optimizer and
timing rule (best of --repeats windows of a fixed number of batches after a 3-batch warm-up), so
that `bench/mnist --torch FILE` can print our samples/s next to PyTorch's on the same machine.

Optional and never run by make or CI: PyTorch is not a dependency of ZeroTrain. To use it,
install torch in a virtual environment outside the repository, then

    python3 bench/mnist_pytorch.py > /tmp/torch_mnist.txt
    ./bench/mnist --torch /tmp/torch_mnist.txt

Output: one line "model threads samples_per_s" per case, comments start with '#'.
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
WARMUP_BATCHES = 3


class MnistCnn(nn.Module):
    """PyTorch's MNIST example network, as apps/mnist_common.h's MnistCnn."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = torch.flatten(self.dropout1(F.max_pool2d(x, 2)), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


class MnistMlp(nn.Module):
    """784-256-128-10 with ReLU, as apps/mnist_common.h's MnistMlp."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as file:
        data = file.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(data_dir, name):
    for suffix in ("", ".gz"):
        path = os.path.join(data_dir, name + suffix)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{name}[.gz] not in {data_dir}")


def samples_per_second(model_name, threads, images, labels, batch_size, batches, repeats):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = MnistCnn() if model_name == "cnn" else MnistMlp()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(images.shape[0])
    batch_count = images.shape[0] // batch_size
    next_batch = 0

    def step():
        nonlocal next_batch
        index = order[(next_batch % batch_count) * batch_size :][:batch_size]
        next_batch += 1
        inputs, targets = images[index], labels[index]  # a gather, as our DataLoader does
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return inputs.shape[0]

    for _ in range(WARMUP_BATCHES):
        step()
    best = 0.0
    for _ in range(repeats):
        samples = 0
        start = time.perf_counter()
        for _ in range(batches):
            samples += step()
        best = max(best, samples / (time.perf_counter() - start))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp-batches", type=int, default=200)
    parser.add_argument("--cnn-batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data-dir", default=FASHION_DIR)
    args = parser.parse_args()

    raw = read_idx(find(args.data_dir, "train-images-idx3-ubyte"))
    images = torch.from_numpy((raw.astype(np.float32) / 255.0 - 0.2860) / 0.3530).unsqueeze(1)
    labels = torch.from_numpy(read_idx(find(args.data_dir, "train-labels-idx1-ubyte")).astype(np.int64))
    print(f"# torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
          f"batch {args.batch_size}, Adam lr 1e-3, best of {args.repeats} windows")
    for model_name in args.models.split(","):
        batches = args.mlp_batches if model_name == "mlp" else args.cnn_batches
        for threads in (int(t) for t in args.threads.split(",")):
            rate = samples_per_second(model_name, threads, images, labels, args.batch_size,
                                      batches, args.repeats)
            print(f"{model_name} {threads} {rate:.1f}", flush=True)


if __name__ == "__main__":
    main()
