"""Benchmark: K runs as one batched stack against the one-by-one loop, in the same process.

Runs per second at K = 1, 4, 8 for

* ``mlp``: full-batch runs of a Chapter-4-sized MLP (14x14 inputs, hidden 64, 1,024 images,
  float64, 40 steps, SAM at K radii), through the sweep engine;
* ``mlp-mini``: the same MLP with batch 100 (Chapter 4's minibatch SAM size), 40 steps;
* ``cnn``: the airbench CNN, SAM at K radii (CPU: 32x32 synthetic images, 256 of them,
  batch 64, 1 epoch; CUDA: the CIFAR-10 JPEG copy, batch 512, bf16, 1 epoch).

With ``--calibrate`` on CUDA it also prints the ``calibration {json}`` line the dry-run
estimate reads (seconds per full-data epoch one run at a time for SGD and SAM, and per
batched group epoch at K = 1, 4, 8); ``benchmarks/train_step.py --full-runs`` calls it.

    .venv/bin/python benchmarks/batched.py [--which mlp,cnn] [--ks 1,4,8] [--data PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from sam_hallucination.data import ImageDataset, load_dataset, synthetic_dataset
from sam_hallucination.runs.batched import train_batched
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.loop import train

RHOS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 0.02, 0.3)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_group(configs: list[RunConfig], ds: ImageDataset, device: str,
               dtype: torch.dtype) -> tuple[float, float]:
    """(seconds one by one, seconds batched) for the same K runs."""
    _sync(device)
    t = time.perf_counter()
    for c in configs:
        train(c, ds, device=device, progress=False, dtype=dtype)
    _sync(device)
    one = time.perf_counter() - t
    t = time.perf_counter()
    train_batched(configs, ds, device=device, dtype=dtype)
    _sync(device)
    return one, time.perf_counter() - t


def bench(label: str, base: RunConfig, ds: ImageDataset, device: str, ks: list[int],
          dtype: torch.dtype = torch.float32) -> dict[int, tuple[float, float]]:
    warm = [base.replace(method="sam", rho=0.1)]
    time_group(warm, ds, device, dtype)  # warm-up (allocator, cudnn, data upload)
    out = {}
    print(f"{label}")
    for k in ks:
        configs = [base.replace(method="sam", rho=RHOS[i % len(RHOS)]) for i in range(k)]
        one, bat = time_group(configs, ds, device, dtype)
        out[k] = (one, bat)
        print(f"  K={k}: one by one {k / one:8.3f} runs/s, batched {k / bat:8.3f} runs/s, "
              f"batched/one-by-one {one / bat:5.2f}x")
    return out


def mlp_case() -> tuple[RunConfig, ImageDataset]:
    ds = synthetic_dataset(n_train=1024, n_test=500, size=14, channels=1, seed=0)
    cfg = RunConfig(dataset="synthetic", model="mlp", hidden=64, epochs=40, batch_size=1024,
                    n_train=1024, n_test=500, lr=0.05, momentum=0.0, nesterov=False,
                    weight_decay=0.0, lr_schedule="constant", warmup_frac=0.0, eval_every=1000,
                    amp=False)
    return cfg, ds


def mlp_minibatch_case() -> tuple[RunConfig, ImageDataset]:
    cfg, ds = mlp_case()
    return cfg.replace(epochs=4, batch_size=100, n_train=1000), ds


def cnn_case(device: str, data: str | None) -> tuple[RunConfig, ImageDataset]:
    if device.startswith("cuda"):
        ds = load_dataset("cifar10-jpeg", root=data)
        return RunConfig(epochs=1, eval_every=1000), ds
    ds = synthetic_dataset(n_train=256, n_test=128, size=32, seed=0)
    return RunConfig(dataset="synthetic", epochs=1, batch_size=64, n_train=256, n_test=128,
                     amp=False), ds


def calibrate(ds: ImageDataset, ks: tuple[int, ...] = (1, 4, 8)) -> dict[str, Any]:
    """CUDA seconds per full-data epoch: one run (SGD, SAM) and batched SAM groups."""
    base = RunConfig(epochs=1, eval_every=1000)

    def seconds(fn: Any) -> float:
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t

    train(base.replace(method="sam", rho=0.1), ds, device="cuda", progress=False)  # warm-up
    cal: dict[str, Any] = {"epoch_s": {}, "group_epoch_s": {}}
    for m, rho in (("sgd", 0.0), ("sam", 0.1)):
        cal["epoch_s"][m] = seconds(lambda m=m, rho=rho: train(base.replace(method=m, rho=rho), ds,
                                                               device="cuda", progress=False))
    for k in ks:
        group = [base.replace(method="sam", rho=RHOS[i]) for i in range(k)]
        train_batched(group, ds, device="cuda")  # warm-up at this K
        cal["group_epoch_s"][str(k)] = seconds(lambda g=group: train_batched(g, ds, device="cuda"))
    cal.update(device_name=torch.cuda.get_device_name(), torch=torch.__version__, model="airbench",
               batch_size=base.batch_size)
    print("calibration " + json.dumps(cal))
    return cal


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--which", default="mlp,mlp-mini,cnn")
    p.add_argument("--ks", default="1,4,8")
    p.add_argument("--data", default=None, help="CIFAR-10 JPEG copy (CUDA)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calibrate", action="store_true", help="CUDA: print the calibration line")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ks = [int(k) for k in a.ks.split(",")]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        name = torch.cuda.get_device_name() if dev == "cuda" else f"CPU, {a.threads} thread(s)"
        if "mlp" in a.which.split(","):
            cfg, ds = mlp_case()
            bench(f"== {dev} ({name}): full-batch MLP (Chapter-4 size), float64, 40 steps, SAM",
                  cfg, ds, dev, ks, torch.float64)
        if "mlp-mini" in a.which:
            cfg, ds = mlp_minibatch_case()
            bench(f"== {dev} ({name}): minibatch MLP (Chapter 4's sgd-sam size: batch 100), "
                  f"float64, 40 steps, SAM", cfg, ds, dev, ks, torch.float64)
        if "cnn" in a.which:
            cfg, ds = cnn_case(dev, a.data)
            bench(f"== {dev} ({name}): airbench CNN, {cfg.train_size()} images, batch "
                  f"{cfg.batch_size}, 1 epoch, SAM", cfg, ds, dev, ks)
        if dev == "cuda" and a.calibrate:
            calibrate(load_dataset("cifar10-jpeg", root=a.data))
    if "cuda" not in devices:
        print("CUDA: not available here (GPU throughput owed to a GPU run)")


if __name__ == "__main__":
    main()
