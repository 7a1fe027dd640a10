"""Benchmark: loading the CIFAR-10 JPEG copy, cold (decode + cache) and warm (cache hit).

Targets (2 CPU cores): cold <= 20 s, warm <= 2 s. The cold load uses a fresh temporary
cache folder, so it always decodes. Also prints a single-process decode of 5,000 images
as a same-run baseline for the parallel speed-up.

    .venv/bin/python benchmarks/data_load.py [--path cifar10_jpeg_compact.npz]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from sam_hallucination.data import data_dir, decode_jpegs, jpeg_bytes, load_dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--path", default=str(data_dir() / "cifar10_jpeg_compact.npz"))
    a = p.parse_args()
    # the file name only: a recorded benchmark must not carry a path of this machine
    print(f"source: {os.path.basename(a.path)}  ({os.cpu_count()} CPUs visible)")
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        ds = load_dataset("cifar10-jpeg", root=a.path, cache_dir=cache)
        cold = time.perf_counter() - t
        warm_times = []
        for _ in range(3):
            t = time.perf_counter()
            ds2 = load_dataset("cifar10-jpeg", root=a.path, cache_dir=cache)
            warm_times.append(time.perf_counter() - t)
        assert np.array_equal(ds.x_train, ds2.x_train)
    warm = min(warm_times)
    with np.load(a.path) as z:
        buf, off = jpeg_bytes({k: z[k] for k in z.files}, "train")  # compact or large layout
        off = off[:5001]
    t = time.perf_counter()
    decode_jpegs(buf, off, workers=1)
    serial_5k = time.perf_counter() - t
    serial_full = serial_5k * 60_000 / 5_000
    print(f"{ds!r}")
    print(f"cold load (sha256 + parallel decode + cache write): {cold:6.2f} s  target <= 20 s  "
          f"{'OK' if cold <= 20 else 'MISSED'}")
    print(f"warm load (cache hit), best of 3:                   {warm:6.2f} s  target <= 2 s   "
          f"{'OK' if warm <= 2 else 'MISSED'}")
    print(f"single-process decode, extrapolated to 60k images:  {serial_full:6.2f} s  "
          f"(cold/serial = {cold / serial_full:.2f}, warm/cold = {warm / cold:.3f})")


if __name__ == "__main__":
    main()
