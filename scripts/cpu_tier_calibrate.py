"""Measure the CPU-scale tier's costs (issue 18) on this machine, for ``runs/estimate.py``.

Runs the tier's recipe (``cpu_tier_base()``) through the real training loop on the CIFAR-10
JPEG copy with ``--threads`` torch threads: ``check`` is one SGD run of the recipe with a
test evaluation every epoch (the accuracy curve), ``sgd-probe``/``sam-probe`` are 1-epoch
runs with the end-of-training probe (SAM at rho 0.5). One JSON line per measurement::

    .venv/bin/python scripts/cpu_tier_calibrate.py [--threads 2] [check sgd-probe sam-probe]

Per-epoch training time is ``train_s``, one test evaluation is ``epoch_s - train_s``, and
the probe is ``after_epochs_s`` (wall time after the last epoch).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sam_hallucination.data import load_dataset
from sam_hallucination.runs.loop import train
from sam_hallucination.runs.sweeps import cpu_tier_base


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", nargs="*", default=["check", "sgd-probe", "sam-probe"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset("cifar10-jpeg", root=a.data)
    base = cpu_tier_base().replace(probe=False, eval_every=1)
    runs = {"check": base,
            "sgd-probe": base.replace(epochs=1, probe=True),
            "sam-probe": base.replace(epochs=1, probe=True, method="sam", rho=0.5)}
    for name in a.what:
        t = time.perf_counter()
        out = train(runs[name], ds, device="cpu", progress=False)
        ep = out["epochs"]
        print(name, json.dumps({
            "n_params": out["n_params"], "wall_s": round(time.perf_counter() - t, 2),
            "epoch_s": [round(e["epoch_time_s"], 2) for e in ep],
            "train_s": [round(e["train_time_s"], 2) for e in ep],
            "test_acc": [e["test_acc"] for e in ep],
            "train_acc": [round(e["train_acc"], 4) for e in ep],
            "after_epochs_s": round(out["wall_time_s"] - sum(e["epoch_time_s"] for e in ep), 2)}),
            flush=True)


if __name__ == "__main__":
    main()
