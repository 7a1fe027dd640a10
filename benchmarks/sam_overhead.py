"""Cost of a SAM step against an SGD step and against a naive per-parameter-loop SAM.

A SAM step does two forward-backward passes, so SAM/SGD ≈ 2 is the floor; the target is
≤ 2.1 (anything above 2 is optimizer overhead). The naive SAM is davda54-style Python code
with one kernel per parameter (per-tensor norms, clone, add, restore); ours uses
``torch._foreach_*``. Timings interleave the three methods round by round and report medians.

    .venv/bin/python benchmarks/sam_overhead.py                  # CPU, batch 64
    .venv/bin/python benchmarks/sam_overhead.py --device cuda    # with synchronisation
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from sam_hallucination.optim import SAM, frozen_bn_stats

F = nn.functional


def small_cnn(width: int = 32, classes: int = 10) -> nn.Module:
    """Three conv-BN-ReLU blocks (the last two strided), global pooling, a linear head."""

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(*block(3, width, 1), *block(width, 2 * width, 2),
                         *block(2 * width, 4 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4 * width, classes))


class NaiveSAM:
    """Reference SAM with per-parameter Python loops (davda54/sam written plainly)."""

    def __init__(self, params, rho: float, **sgd_kwargs) -> None:
        self.params = list(params)
        self.rho = rho
        self.base = torch.optim.SGD(self.params, **sgd_kwargs)
        self.old: dict[nn.Parameter, torch.Tensor] = {}

    @torch.no_grad()
    def first_step(self) -> None:
        norm = torch.norm(torch.stack([p.grad.norm(2) for p in self.params if p.grad is not None]))
        scale = self.rho / (norm + 1e-12)
        for p in self.params:
            if p.grad is None:
                continue
            self.old[p] = p.data.clone()
            p.add_(p.grad * scale)
        self.base.zero_grad()

    @torch.no_grad()
    def second_step(self) -> None:
        for p in self.params:
            if p in self.old:
                p.data.copy_(self.old[p])
        self.base.step()
        self.base.zero_grad()


def timed(fn: Callable[[], None], sync: Callable[[], None]) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def bench(device: str, batch: int, repeats: int, warmup: int, rho: float) -> dict[str, float]:
    torch.manual_seed(0)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.randn(batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    kw = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
    models = {k: small_cnn().to(dev) for k in ("sgd", "sam", "naive")}
    sgd = torch.optim.SGD(models["sgd"].parameters(), **kw)
    sam = SAM(models["sam"].parameters(), torch.optim.SGD, rho=rho, **kw)
    naive = NaiveSAM(models["naive"].parameters(), rho, **kw)

    def sgd_step() -> None:
        m = models["sgd"]
        F.cross_entropy(m(x), y).backward()
        sgd.step()
        sgd.zero_grad()

    def sam_step() -> None:
        m = models["sam"]
        F.cross_entropy(m(x), y).backward()

        def closure() -> torch.Tensor:
            with frozen_bn_stats(m):
                loss = F.cross_entropy(m(x), y)
            loss.backward()
            return loss

        sam.step(closure)
        sam.zero_grad()

    def naive_step() -> None:
        m = models["naive"]
        F.cross_entropy(m(x), y).backward()
        naive.first_step()
        with frozen_bn_stats(m):
            F.cross_entropy(m(x), y).backward()
        naive.second_step()

    # update-only: the optimizer arithmetic on fixed gradients (no forward/backward)
    for m in models.values():
        F.cross_entropy(m(x), y).backward()

    def sgd_update() -> None:
        sgd.step()

    def sam_update() -> None:
        sam.first_step()
        sam.second_step()

    def naive_update() -> None:
        with torch.no_grad():
            norm = torch.norm(torch.stack([p.grad.norm(2) for p in naive.params]))
            scale = rho / (norm + 1e-12)
            for p in naive.params:
                naive.old[p] = p.data.clone()
                p.add_(p.grad * scale)
            for p in naive.params:
                p.data.copy_(naive.old[p])
        naive.base.step()

    results: dict[str, float] = {}
    for label, fns, reps in (
        ("update", dict(sgd=sgd_update, sam=sam_update, naive=naive_update), 10 * repeats),
        ("step", dict(sgd=sgd_step, sam=sam_step, naive=naive_step), repeats),
    ):
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(reps):  # interleaved rounds: load changes hit all methods alike
            for k, fn in fns.items():
                times[k].append(timed(fn, sync))
        for k, ts in times.items():
            results[f"{label}_{k}_ms"] = 1e3 * statistics.median(ts)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, or 'all' (cpu + cuda if present)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20, help="timed rounds per method (median)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rho", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        ap.error("--batch and --repeats must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    devices = [args.device] if args.device != "all" else ["cpu"] + (
        ["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise SystemExit("--device cuda requested but CUDA is not available")
        name = torch.cuda.get_device_name(device) if device.startswith("cuda") else (
            f"CPU, {torch.get_num_threads()} thread(s)")
        r = bench(device, args.batch, args.repeats, args.warmup, args.rho)
        print(f"== {device} ({name}), batch {args.batch}, median of {args.repeats} rounds, "
              f"torch {torch.__version__}")
        print(f"full step   SGD {r['step_sgd_ms']:8.2f} ms | SAM {r['step_sam_ms']:8.2f} ms | "
              f"naive SAM {r['step_naive_ms']:8.2f} ms")
        print(f"update only SGD {r['update_sgd_ms']:8.3f} ms | SAM {r['update_sam_ms']:8.3f} ms | "
              f"naive SAM {r['update_naive_ms']:8.3f} ms")
        print(f"SAM/SGD step ratio      {r['step_sam_ms'] / r['step_sgd_ms']:.3f}  (target <= 2.1)")
        print(f"SAM/naive step ratio    {r['step_sam_ms'] / r['step_naive_ms']:.3f}  (< 1: faster)")
        print(f"SAM/naive update ratio  {r['update_sam_ms'] / r['update_naive_ms']:.3f}")


if __name__ == "__main__":
    main()
