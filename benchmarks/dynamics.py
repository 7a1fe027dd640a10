"""Throughput of the batched SAM engine on the ring, against numpy and a per-point loop.

    .venv/bin/python benchmarks/dynamics.py [--batch 200000] [--steps 200]

Prints point-steps per second (float64, closed-form gradient, one CPU thread), all measured
in this run: the batched engine :func:`sam_hallucination.rd.dynamics.iterate`, a 20-line
numpy loop that keeps x and y in separate arrays (:func:`numpy_baseline`, the bar the engine
should clear, issue 22) and a naive loop over points (:func:`naive_sam_loop`, small sample).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sam_hallucination.rd.dynamics import disk_starts, iterate, naive_sam_loop
from sam_hallucination.rd.landscapes import DTYPE, RING


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def numpy_baseline(xy: np.ndarray, rho: float, eta: float, steps: int) -> np.ndarray:
    """SAM on the ring with x and y in separate float64 arrays: the engine's speed bar."""
    x, y = xy[:, 0].copy(), xy[:, 1].copy()
    for _ in range(steps):
        c = 4.0 * (x * x + y * y - 1.0)
        gx, gy = c * x, c * y
        n = np.sqrt(gx * gx + gy * gy)
        n[n == 0] = 1.0  # at a critical point u = 0 (g = 0 stays 0)
        px, py = x + rho * (gx / n), y + rho * (gy / n)
        c = 4.0 * (px * px + py * py - 1.0)
        x -= eta * (c * px)
        y -= eta * (c * py)
    return np.stack((x, y), -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--naive-points", type=int, default=20)
    ap.add_argument("--naive-steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    x0 = disk_starts(args.batch, 0.95, seed=0)
    run = lambda: iterate(RING, x0, rho=1.5, eta=0.1, steps=args.steps, early_stop=False)
    run()  # warm-up
    t_batch = best_of(run, 3)
    rate_batch = args.batch * args.steps / t_batch

    xy = x0.numpy()
    numpy_run = lambda: numpy_baseline(xy, 1.5, 0.1, args.steps)
    numpy_run()  # warm-up
    rate_numpy = args.batch * args.steps / best_of(numpy_run, 3)

    pts = x0[: args.naive_points].tolist()
    naive = lambda: [naive_sam_loop(RING, p, 1.5, 0.1, args.naive_steps) for p in pts]
    t_naive = best_of(naive, 2)
    rate_naive = args.naive_points * args.naive_steps / t_naive

    # the two implementations agree
    ref = torch.tensor(naive_sam_loop(RING, pts[0], 1.5, 0.1, args.naive_steps), dtype=DTYPE)
    got = iterate(RING, x0[:1], rho=1.5, eta=0.1, steps=args.naive_steps, early_stop=False).x[0]
    err = float((ref - got).abs().max())
    # numpy's norm has no fused multiply-add (torch's vector_norm has), so agree to rounding
    np_err = float(np.abs(numpy_baseline(xy[:1], 1.5, 0.1, args.naive_steps)
                          - got.numpy()).max())

    print(f"SAM on the ring, float64, {args.threads} thread(s)")
    print(f"batched engine : {rate_batch:.3e} point-steps/s  (batch {args.batch}, "
          f"{args.steps} steps, best of 3)")
    print(f"numpy baseline : {rate_numpy:.3e} point-steps/s  (x, y in separate arrays, "
          f"same batch and steps, best of 3)")
    print(f"naive loop     : {rate_naive:.3e} point-steps/s  ({args.naive_points} points x "
          f"{args.naive_steps} steps)")
    print(f"engine / naive : {rate_batch / rate_naive:.0f}x")
    print(f"engine / numpy : {rate_batch / rate_numpy:.2f}x  "
          f"(target >= 1: {'PASS' if rate_batch >= rate_numpy else 'FAIL'})")
    print(f"max |batched - naive| after {args.naive_steps} steps: {err:.1e}; "
          f"|batched - numpy|: {np_err:.1e}")


if __name__ == "__main__":
    main()
