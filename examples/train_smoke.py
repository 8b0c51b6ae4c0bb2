"""A GPU smoke run: train a small ResNet for a few minutes from registry WebDataset shards.

    python examples/train_smoke.py --train DIR --val DIR [--minutes 3] [--size 64]

DIR is a resolved `webdataset` variant (the job spec passes `${data.train.path}`).
Shards are read as plain tars (`<key>.cls` + `<key>.jpg`), split across loader
processes, decoded with Pillow. Validation keeps the classes train has, so
chance is 1/K for K train classes. Prints one JSON line: loader throughput
alone (images/s, no GPU work), training throughput, accuracy against chance.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import random
import tarfile
import time

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class Shards(IterableDataset):
    """Samples of a folder of shards; with `epoch`, shards shuffled and a shuffle buffer
    (shards are in class order, as the registry writes them)."""

    def __init__(self, folder: str, size: int, keep: dict[int, int] | None = None,
                 epoch: int | None = None, buffer: int = 2048) -> None:
        self.shards = sorted(glob.glob(os.path.join(folder, "*.tar")))
        if not self.shards:
            raise SystemExit(f"{folder}: no .tar shards (is it a webdataset variant?)")
        self.size, self.keep, self.epoch, self.buffer = size, keep, epoch, buffer

    def __iter__(self):
        if self.epoch is None:
            yield from self._samples(self._mine(self.shards))
            return
        rng = random.Random(self.epoch)
        shards = list(self.shards)
        rng.shuffle(shards)
        rng = random.Random(self.epoch * 1000 + (get_worker_info() or _Solo).id)
        pool = []
        for sample in self._samples(self._mine(shards)):
            pool.append(sample)
            if len(pool) >= self.buffer:
                yield pool.pop(rng.randrange(len(pool)))
        rng.shuffle(pool)
        yield from pool

    @staticmethod
    def _mine(shards: list[str]) -> list[str]:
        info = get_worker_info()
        return shards[info.id::info.num_workers] if info else shards

    def _samples(self, shards: list[str]):
        for shard in shards:
            with tarfile.open(shard) as tf:
                label = None
                for member in tf:
                    data = tf.extractfile(member).read()
                    if member.name.endswith(".cls"):
                        label = int(data)
                    elif member.name.endswith(".jpg"):
                        if self.keep is not None and label not in self.keep:
                            continue
                        with Image.open(io.BytesIO(data)) as im:
                            im.draft("RGB", (self.size, self.size))
                            pixels = np.asarray(im.convert("RGB").resize((self.size, self.size)))
                        target = self.keep[label] if self.keep is not None else label
                        yield torch.from_numpy(pixels.copy()), target


class _Solo:
    id = 0


def labels_in(folder: str) -> list[int]:
    found = set()
    for shard in sorted(glob.glob(os.path.join(folder, "*.tar"))):
        with tarfile.open(shard) as tf:
            found |= {int(tf.extractfile(m).read()) for m in tf if m.name.endswith(".cls")}
    return sorted(found)


def block(cin: int, cout: int, stride: int) -> nn.Module:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout))
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    return Residual()


def model(classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        block(32, 64, 2), block(64, 128, 2), block(128, 256, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, classes))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--loader-workers", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--target", type=float, default=0.0)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    classes = labels_in(args.train)
    keep = {label: i for i, label in enumerate(classes)}

    def loader(folder: str, keep: dict[int, int], epoch: int | None = None) -> DataLoader:
        return DataLoader(Shards(folder, args.size, keep, epoch), batch_size=args.batch_size,
                          num_workers=args.loader_workers, pin_memory=True,
                          persistent_workers=False)

    start = time.perf_counter()
    seen = sum(len(y) for _, y in loader(args.train, keep, 0))  # loader alone, no GPU work
    loader_rate = seen / (time.perf_counter() - start)

    net = model(len(classes)).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4,
                          nesterov=True)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)

    deadline = time.perf_counter() + args.minutes * 60
    epochs, trained, train_seconds = 0, 0, 0.0
    while time.perf_counter() < deadline:
        net.train()
        t0 = time.perf_counter()
        for x, y in loader(args.train, keep, epochs + 1):
            x, y = prepare(x), y.to(device, non_blocking=True)
            if torch.rand(1).item() < 0.5:
                x = x.flip(3)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            trained += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - t0
        epochs += 1

    net.eval()
    correct = total = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        for x, y in loader(args.val, keep):
            pred = net(prepare(x)).argmax(1).cpu()
            correct += int((pred == y).sum())
            total += len(y)
    accuracy = correct / max(total, 1)
    print(json.dumps({
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "classes": len(classes), "train_images": seen, "val_images": total,
        "loader_images_per_s": round(loader_rate), "epochs": epochs,
        "train_images_per_s": round(trained / train_seconds) if train_seconds else None,
        "val_accuracy": round(accuracy, 4), "chance": round(1 / len(classes), 4),
        "target": args.target, "reached": accuracy >= args.target}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
