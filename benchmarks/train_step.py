"""Benchmark: one SAM step vs one SGD step of the airbench CNN (same run, same data).

CPU: batch 64, 1 thread, target SAM/SGD <= 2.1x (SAM does two forward/backward passes).
CUDA (if present): the same at batch 512 under bf16 autocast; with ``--full-runs`` then
(on the CIFAR-10 JPEG copy, compact file preferred) the ``calibration {json}`` line the
dry-run estimate reads (per-epoch seconds one run at a time and per batched group, see
``benchmarks/batched.py``), batched throughput at K = 1, 4, 8 against the one-by-one loop,
and two full pilot runs (SGD and SAM rho=0.1) with their wall times.

    .venv/bin/python benchmarks/train_step.py [--reps 20] [--full-runs] [--data PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

from sam_hallucination.models import make_model
from sam_hallucination.optim import SAM
from sam_hallucination.runs.step import train_step


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out.float(), y)


def time_steps(device: str, batch: int, reps: int, amp: bool) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    out = {}
    for method in ("sgd", "sam"):
        model = make_model("airbench", 10).to(device, memory_format=torch.channels_last)
        params = [p for p in model.parameters() if p.requires_grad]
        kw = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        opt = torch.optim.SGD(params, **kw) if method == "sgd" else SAM(
            params, torch.optim.SGD, rho=0.1, **kw)

        times = []
        for i in range(reps + 3):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            train_step(model, opt, x, y, _loss, ctx)  # the training loop's own step
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= 3:  # warm-up steps are not timed
                times.append(time.perf_counter() - t)
        out[method] = statistics.median(times)
    return out


def report(label: str, t: dict[str, float], target: float | None) -> None:
    r = t["sam"] / t["sgd"]
    verdict = "" if target is None else f"  target <= {target}x {'OK' if r <= target else 'MISSED'}"
    print(f"{label}: SGD step {t['sgd'] * 1e3:8.2f} ms, SAM step {t['sam'] * 1e3:8.2f} ms, "
          f"ratio {r:.2f}x{verdict}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--full-runs", action="store_true", help="CUDA: also time two pilot runs")
    p.add_argument("--data", default=None,
                   help="CIFAR-10 JPEG copy: folder or .npz (default: $SAM_DATA_DIR, compact first)")
    a = p.parse_args()
    torch.set_num_threads(1)
    report("CPU  airbench batch 64, fp32, 1 thread", time_steps("cpu", 64, a.reps, False), 2.1)
    if not torch.cuda.is_available():
        print("CUDA: not available here (GPU timings owed to a GPU run)")
        return
    name = torch.cuda.get_device_name()
    report(f"CUDA {name} airbench batch 512, bf16", time_steps("cuda", 512, 50, True), 2.1)
    if a.full_runs:
        from batched import bench, calibrate  # benchmarks/batched.py, next to this script

        from sam_hallucination.data import load_dataset
        from sam_hallucination.runs.config import RunConfig
        from sam_hallucination.runs.loop import train

        ds = load_dataset("cifar10-jpeg", root=a.data)
        calibrate(ds)
        bench("CUDA batched SAM, airbench, CIFAR-10 JPEG copy, batch 512, 1 epoch",
              RunConfig(epochs=1, eval_every=1000), ds, "cuda", [1, 4, 8])
        for cfg in (RunConfig(), RunConfig(method="sam", rho=0.1)):
            train(cfg.replace(epochs=1), ds, device="cuda", progress=False)  # warm-up
            out = train(cfg, ds, device="cuda", progress=False)
            print(f"CUDA full pilot run {cfg.run_id()}: {out['wall_time_s']:.1f} s, "
                  f"test acc {out['final']['test_acc']:.4f}")


if __name__ == "__main__":
    main()
