"""Throughput of the batched SAM engine on the ring, against a per-point Python loop.

    .venv/bin/python benchmarks/dynamics.py [--batch 200000] [--steps 200]

Prints point-steps per second (float64, closed-form gradient, one CPU thread) for the batched
engine :func:`sam_hallucination.rd.dynamics.iterate` and for a naive loop over points
(:func:`naive_sam_loop`, small sample), both measured in this run, and their ratio.
Target: >= 1e7 point-steps/s for the batched engine.
"""

from __future__ import annotations

import argparse
import time

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

    pts = x0[: args.naive_points].tolist()
    naive = lambda: [naive_sam_loop(RING, p, 1.5, 0.1, args.naive_steps) for p in pts]
    t_naive = best_of(naive, 2)
    rate_naive = args.naive_points * args.naive_steps / t_naive

    # the two implementations agree
    ref = torch.tensor(naive_sam_loop(RING, pts[0], 1.5, 0.1, args.naive_steps), dtype=DTYPE)
    got = iterate(RING, x0[:1], rho=1.5, eta=0.1, steps=args.naive_steps, early_stop=False).x[0]
    err = float((ref - got).abs().max())

    print(f"SAM on the ring, float64, {args.threads} thread(s)")
    print(f"batched engine : {rate_batch:.3e} point-steps/s  (batch {args.batch}, "
          f"{args.steps} steps, best of 3)")
    print(f"naive loop     : {rate_naive:.3e} point-steps/s  ({args.naive_points} points x "
          f"{args.naive_steps} steps)")
    print(f"speed-up       : {rate_batch / rate_naive:.0f}x")
    print(f"target >= 1e7 point-steps/s: {'PASS' if rate_batch >= 1e7 else 'FAIL'}")
    print(f"max |batched - naive| after {args.naive_steps} steps: {err:.1e}")


if __name__ == "__main__":
    main()
