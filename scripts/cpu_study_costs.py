"""Write results/benchmarks/cpu_study_calibration.txt: the recipe calibration and the CPU study's
measured costs, from the committed records (nothing is re-run).

    .venv/bin/python scripts/cpu_study_costs.py [--results results]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import pandas as pd

from sam_hallucination.report.study import calibration_table

SWEEPS = ("cifar10-cpu-calib", "cifar10-cpu-study", "cifar10-cpu-study-noise", "cifar10-cpu-dose",
          "cifar10-cpu-switch", "cifar10-cpu-rule", "cifar10-cpu-study-control")


READING = """== reading (written by hand, 2026-12-02)
No calibration candidate showed a SAM win with a 95% interval above 0 within the budget: at
5k x 40 epochs the paired difference over seeds 100-102 is +1.64 points [-2.07, +5.34] (t,
df 2). That candidate is the closest to a win (largest mean) and is the study's recipe; the
other two were pruned after one seed (+0.71 and +1.69). The study's grid uses fresh seeds
(10-12). A -stall folder's records are stall tests (s/run: the test's own wall time); its
"control" rows are the annealed controls' stall tests, whose SGD candidate runs are in
cifar10-cpu-study-control. Idle-machine costs of this recipe: the fastest whole runs took
159 s (SGD) and 303 s (SAM) with one thread (runs.estimate.CPU_CALIBRATION)."""


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--results", default="results")
    a = p.parse_args()
    root = Path(a.results)
    cal = calibration_table(records(root / "cifar10-cpu-calib"))
    lines = ["# CPU study (issues 23-24): recipe calibration and measured costs",
             f"# Machine: {platform.processor() or platform.machine()}, {platform.system()}; "
             "runs as separate processes, one torch thread each, two at a time.",
             "# Wall times were measured while other jobs shared the 2 cores (tests, builds, up to a",
             "# load average of 14) and some include a pause: upper bounds on an idle machine's cost.", "",
             "== calibration: airbench w16, no augmentation, SGD vs SAM rho 0.1 (test acc on the",
             "== full 10k test set); candidates other than the first pruned after seed 100", "",
             cal.to_string(index=False, float_format=lambda x: f"{x:.2f}"), "",
             "== cost per run (wall seconds, mean over finished runs) and total compute", ""]
    rows, total = [], 0.0
    for s in SWEEPS:
        for sub in (s, f"{s}-stall"):
            recs = records(root / sub)
            if not recs:
                continue
            walls = [r.get("wall_time_s") or r.get("result", {}).get("wall_time_s", 0.0)
                     for r in recs]
            kinds = ["control" if "control" in r else r["config"]["method"] for r in recs]
            by = pd.Series(walls, index=kinds).groupby(level=0)
            total += sum(walls)
            rows.append({"folder": sub, "records": len(recs), "total s": sum(walls),
                         **{f"{m} s/run": v for m, v in by.mean().items()}})
    lines += [pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.0f}"), "",
              f"total: {total:.0f} s = {total / 3600:.2f} process-hours", "", READING]
    out = root / "benchmarks" / "cpu_study_calibration.txt"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
