"""Run configurations, named sweeps, resumable execution and result files.

A sweep is an ordered list of :class:`RunConfig`. ``run_sweep`` runs the ones whose
result file ``results/<sweep>/<run_id>.json`` is missing or unreadable, writing each
file atomically (temp file + ``os.replace``), so a killed sweep resumes without
duplicates or corrupt files. A diverged run counts as finished.

CLI::

    python -m sam_hallucination.experiments --list
    python -m sam_hallucination.experiments cifar10-rho --device cuda --data PATH \
        [--results DIR] [--max-runs N] [--time-budget S] [--seeds 0,1] [--dry-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .data import DATASET_NAMES, TRAIN_SIZES, ImageDataset, load_dataset, repo_root
from .models import MODEL_NAMES
from .train import LR_SCHEDULES, METHODS, train

# 2: adds the end-of-training "probe" (None when the run had probe=False).
SCHEMA_VERSION = 2
PROBE_FIELDS = ("probe", "probe_batches", "probe_steps")

# Rough seconds per epoch over the full 50k-image training set, for an SGD run
# (SAM costs about 2x). CPU numbers measured here (1 thread, AMD EPYC); CUDA numbers
# are guesses until a GPU run replaces them: estimates from finished results win.
EPOCH_COST_S = {
    ("airbench", "cpu"): 800.0,
    ("resnet18", "cpu"): 6000.0,
    ("mlp", "cpu"): 5.0,
    ("airbench", "cuda"): 0.6,
    ("resnet18", "cuda"): 6.0,
    ("mlp", "cuda"): 0.1,
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (hashing it gives the run id).

    Defaults are the GPU pilot settings (airbench CNN on the CIFAR-10 JPEG copy,
    16 epochs, batch 512, Nesterov SGD 0.9, one-cycle LR peaking at 0.2, wd 5e-4).
    ``switch_frac`` is used by method "switch" (SGD for that fraction of the main
    steps, then SAM). ``n_train``/``n_test`` take a class-balanced subset seeded by
    ``subset_seed`` (the same for every training seed). ``final_constant_lr_epochs``
    appends epochs at the constant rate ``final_lr`` after the schedule ends.
    ``augment=None`` means flip+translate for the CIFAR data sets, none otherwise.
    ``probe=True`` runs the end-of-training probe (stall diagnostics on ``probe_batches``
    fixed batches, then ``probe_steps`` SGD and SAM continuation steps at ``final_lr``;
    see :mod:`sam_hallucination.train`). The probe fields enter the run id only when
    ``probe=True``, so configs without the probe keep their ids.
    """

    dataset: str = "cifar10-jpeg"
    model: str = "airbench"
    method: str = "sgd"
    rho: float = 0.0
    seed: int = 0
    epochs: int = 16
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    lr_schedule: str = "onecycle"
    warmup_frac: float = 0.2
    switch_frac: float = 0.0
    n_train: int | None = None
    n_test: int | None = None
    subset_seed: int = 0
    label_noise: float = 0.0
    final_constant_lr_epochs: int = 0
    final_lr: float = 0.01
    adaptive: bool = False
    hidden: int = 512
    augment: bool | None = None
    amp: bool = True
    eval_every: int = 1
    probe: bool = False
    probe_batches: int = 16
    probe_steps: int = 40

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"RunConfig.{name}={getattr(self, name)!r}: {why}")

        if self.dataset not in DATASET_NAMES:
            raise bad("dataset", f"unknown dataset; valid: {', '.join(DATASET_NAMES)}")
        if self.model not in MODEL_NAMES:
            raise bad("model", f"unknown model; valid: {', '.join(MODEL_NAMES)}")
        if self.method not in METHODS:
            raise bad("method", f"unknown method; valid: {', '.join(METHODS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", f"valid: {', '.join(LR_SCHEDULES)}")
        for name in ("rho", "lr", "momentum", "weight_decay", "label_smoothing", "warmup_frac",
                     "switch_frac", "label_noise", "final_lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(name, "must be a finite real number")
            if v < 0:
                raise bad(name, "must be >= 0")
            object.__setattr__(self, name, float(v))  # rho=1 and rho=1.0: same run id
        if self.lr == 0:
            raise bad("lr", "must be > 0")
        if self.method != "sgd" and self.rho == 0:
            raise bad("rho", f"method {self.method!r} needs rho > 0 (use method='sgd' for rho=0)")
        if self.method == "sgd" and self.rho != 0:
            raise bad("rho", "method 'sgd' ignores rho; set rho=0 (or method='sam')")
        if self.momentum >= 1:
            raise bad("momentum", "must be < 1")
        if self.nesterov and self.momentum == 0:
            raise bad("nesterov", "Nesterov needs momentum > 0")
        for name in ("label_smoothing", "warmup_frac", "label_noise"):
            if getattr(self, name) >= 1:
                raise bad(name, "must be < 1")
        if not self.switch_frac < 1:
            raise bad("switch_frac", "must be in [0, 1)")
        if self.method != "switch" and self.switch_frac != 0:
            raise bad("switch_frac", "only method 'switch' uses it; leave it at 0")
        for name in ("seed", "subset_seed"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                raise bad(name, "must be an int >= 0")
        if not isinstance(self.probe, bool):
            raise bad("probe", "must be True or False")
        for name in ("epochs", "batch_size", "hidden", "eval_every", "probe_batches",
                     "probe_steps"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "must be an int >= 1")
        if not _is_int(self.final_constant_lr_epochs) or self.final_constant_lr_epochs < 0:
            raise bad("final_constant_lr_epochs", "must be an int >= 0")
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v < 1):
                raise bad(name, "must be None (whole split) or an int >= 1")
        size = min(self.n_train or TRAIN_SIZES[self.dataset], TRAIN_SIZES[self.dataset])
        if self.batch_size > size:
            raise bad("batch_size", f"larger than the training set ({size} images)")

    def run_id(self) -> str:
        """Readable name plus an 8-hex hash of the full config."""
        d = asdict(self)
        if not self.probe:  # ids of configs without the probe are those of schema 1
            for k in PROBE_FIELDS:
                d.pop(k)
        h = hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
        parts = [self.dataset, self.model, self.method]
        if self.method != "sgd":
            parts.append(f"rho{self.rho:g}")
        if self.method == "switch":
            parts.append(f"sw{self.switch_frac:g}")
        parts += [f"s{self.seed}", h]
        return "_".join(parts)

    def replace(self, **kw: Any) -> RunConfig:
        return dataclasses.replace(self, **kw)


@dataclass
class Sweep:
    """A named, ordered list of runs."""

    name: str
    description: str
    runs: list[RunConfig] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.runs)


def grid(base: RunConfig, rhos: Iterable[float], seeds: Iterable[int],
         methods: Iterable[str] = ("sgd", "sam"), switch_fracs: Iterable[float] = (0.1,),
         models: Iterable[str] | None = None) -> list[RunConfig]:
    """Cells rho x method (x switch fraction) x model, repeated per seed, seed-major.

    "sgd" gives one cell per model (rho = 0); rho = 0 is skipped for the SAM methods,
    since SAM with rho = 0 is SGD. "switch" with fraction 0 is the "sam" cell and is
    skipped. All cells of seed 0 come first, then seed 1, and so on.
    """
    cells: list[dict[str, Any]] = []
    for model in (models or [base.model]):
        for method in methods:
            if method == "sgd":
                cells.append(dict(model=model, method="sgd", rho=0.0))
                continue
            for rho in rhos:
                if rho == 0:
                    continue
                if method == "switch":
                    cells += [dict(model=model, method="switch", rho=float(rho),
                                   switch_frac=float(f)) for f in switch_fracs if f > 0]
                else:
                    cells.append(dict(model=model, method=method, rho=float(rho)))
    return [base.replace(seed=s, **c) for s in seeds for c in cells]


def _sweeps() -> dict[str, Callable[[], Sweep]]:
    pilot = RunConfig()  # the GPU pilot settings
    # The CIFAR sweeps end with one epoch at the constant small rate final_lr, then the
    # end-of-training probe (stall diagnostics + SGD/SAM continuation) at the final weights.
    probed = pilot.replace(probe=True, final_constant_lr_epochs=1)
    rn18 = probed.replace(model="resnet18", epochs=10, batch_size=512, lr=0.2)
    # CPU smoke of both CIFAR chapters' code paths (not the experiment): 512 images, 1 epoch
    # + 1 constant-LR epoch, a 2-batch probe with 4 continuation steps.
    smoke = probed.replace(epochs=1, batch_size=64, n_train=512, n_test=500, probe_batches=2,
                           probe_steps=4)
    return {
        "smoke": lambda: Sweep(
            "smoke", "Tiny CPU check: 2-layer MLP on a 2k subset of Fashion-MNIST, 3 epochs.",
            grid(RunConfig(dataset="fashion-mnist", model="mlp", epochs=3, batch_size=128,
                           lr=0.1, n_train=2048, n_test=1000, hidden=256),
                 rhos=(0.05, 0.5, 2.0), seeds=(0,),
                 methods=("sgd", "sam", "switch", "rho-decay"), switch_fracs=(0.1,))),
        "smoke-cifar": lambda: Sweep(
            "smoke-cifar", "CPU smoke run of the cifar10-rho and cifar10-remedy machinery (not "
            "the experiment): airbench CNN, CIFAR-10 JPEG copy, 512-image subset, 1 epoch + 1 "
            "constant-LR epoch, end-of-training probe.",
            _seed_major(grid(smoke, rhos=(0.1, 2.0), seeds=(0, 1), methods=("sgd", "sam"))
                        + grid(smoke, rhos=(2.0,), seeds=(0,), methods=("switch", "rho-decay"),
                               switch_fracs=(0.1, 0.3)))),
        "cifar10-rho": lambda: Sweep(
            "cifar10-rho", "SAM vs SGD over rho: airbench CNN on the CIFAR-10 JPEG copy, "
            "pilot settings (16 epochs, batch 512, Nesterov 0.9, one-cycle peak 0.2, wd 5e-4, "
            "bf16), then 1 epoch at LR 0.01 and the end-of-training probe.",
            grid(probed, rhos=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0), seeds=(0, 1, 2))),
        "cifar10-resnet18": lambda: Sweep(
            "cifar10-resnet18", "ResNet-18 on the CIFAR-10 JPEG copy, short budget (10 epochs).",
            _seed_major(grid(rn18, rhos=(0.05, 0.2, 1.0), seeds=(0, 1), methods=("sgd", "sam"))
                        + grid(rn18, rhos=(1.0,), seeds=(0, 1), methods=("switch",),
                               switch_fracs=(0.1,)))),
        "cifar10-remedy": lambda: Sweep(
            "cifar10-remedy", "SGD warm-start before SAM: switch fraction x rho, with SAM, SGD "
            "and rho-decay baselines (airbench, CIFAR-10 JPEG copy, pilot settings + probe).",
            _seed_major(grid(probed, rhos=(0.2, 0.5, 1.0, 2.0), seeds=(0, 1, 2),
                             methods=("sgd", "sam", "switch", "rho-decay"),
                             switch_fracs=(0.05, 0.1, 0.2, 0.3)))),
        "cifar100-resnet18-paper": lambda: Sweep(
            "cifar100-resnet18-paper", "ResNet-18 on CIFAR-100, 200 epochs, batch 128, cosine "
            "LR 0.1, wd 5e-4 (standard SAM settings; the paper's exact ones are not known). "
            "Needs the official archive and a GPU.",
            grid(RunConfig(dataset="cifar100", model="resnet18", epochs=200, batch_size=128,
                           lr=0.1, lr_schedule="cosine", warmup_frac=0.0, probe=True,
                           final_constant_lr_epochs=1),
                 rhos=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0), seeds=(0, 1, 2),
                 methods=("sgd", "sam", "switch"), switch_fracs=(0.1,))),
    }


def _seed_major(runs: list[RunConfig]) -> list[RunConfig]:
    return sorted(runs, key=lambda r: r.seed)  # stable: keeps the cell order per seed


SWEEPS = _sweeps()


def get_sweep(name_or_sweep: str | Sweep) -> Sweep:
    if isinstance(name_or_sweep, Sweep):
        return name_or_sweep
    if name_or_sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {name_or_sweep!r}; valid: {', '.join(SWEEPS)}")
    return SWEEPS[name_or_sweep]()


# ----------------------------------------------------------------------------- provenance


def device_name(device: str | torch.device) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_info() -> dict[str, Any]:
    """Commit hash, and whether src/ differs from it.

    Without a git checkout (e.g. a copied working tree on a GPU machine) the commit is
    taken from $SAM_GIT_COMMIT when set (``dirty`` then unknown), else "unknown".
    """
    root = repo_root()
    fallback = {"commit": os.environ.get("SAM_GIT_COMMIT") or "unknown", "dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return fallback
        # dirty: the package source differs from the commit (modified or untracked files)
        status = subprocess.run(["git", "status", "--porcelain", "--", "src"],
                                cwd=root, capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return fallback


def json_safe(x: Any) -> Any:
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def result_record(config: RunConfig, out: dict[str, Any], sweep: str,
                  device: str | torch.device) -> dict[str, Any]:
    """The JSON document for one run (see the schema in the module's README)."""
    dev = torch.device(out["device"])
    return json_safe({
        "schema_version": SCHEMA_VERSION,
        "sweep": sweep,
        "run_id": config.run_id(),
        "config": asdict(config),
        "status": out["status"],
        "diverged_at": out["diverged_at"],
        "dataset_name": out["dataset"],
        "n_train": out["n_train"],
        "n_test": out["n_test"],
        "n_params": out["n_params"],
        "steps": out["steps"],
        "steps_per_epoch": out["steps_per_epoch"],
        "final": out["final"],
        "epochs": out["epochs"],
        "wall_time_s": out["wall_time_s"],
        "probe": out.get("probe"),
        "provenance": {
            "device": str(dev),
            "device_name": device_name(dev),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "git": git_info(),
            "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    })


def read_result(path: Path) -> dict[str, Any] | None:
    """A finished run's record, or None if the file is missing or does not parse."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("status") not in ("ok", "diverged"):
        return None
    return rec


def load_results(sweep: str | Sweep, results_dir: str | os.PathLike = "results"
                 ) -> list[dict[str, Any]]:
    """All readable result records of a sweep, in the sweep's run order when known."""
    name = sweep.name if isinstance(sweep, Sweep) else sweep
    folder = Path(results_dir) / name
    recs = {p.stem: r for p in sorted(folder.glob("*.json")) if (r := read_result(p))}
    order: list[str] = []
    if isinstance(sweep, Sweep) or name in SWEEPS:
        order = [c.run_id() for c in get_sweep(sweep).runs]
    ordered = [recs.pop(i) for i in order if i in recs]
    return ordered + list(recs.values())


def estimate_seconds(config: RunConfig, device: str, finished: list[dict[str, Any]]) -> float:
    """Estimated run time: from finished runs of the same model/method/device, else the table."""
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    n = min(config.n_train or TRAIN_SIZES[config.dataset], TRAIN_SIZES[config.dataset])
    epochs = config.epochs + config.final_constant_lr_epochs
    work = n * epochs
    sam_factor = 1.0 if config.method == "sgd" else 2.0
    same = [r for r in finished if r["config"]["model"] == config.model
            and r["config"]["method"] == config.method
            and r["provenance"]["device"].split(":")[0] == kind and r["status"] == "ok"]
    if same:
        rates = [r["wall_time_s"] / (r["n_train"] * len(r["epochs"])) for r in same]
        return work * sum(rates) / len(rates)
    if config.probe:  # diagnostics (~4 passes a batch) + SGD and SAM continuations
        work += config.batch_size * (config.probe_batches * 2 + config.probe_steps
                                     * (1 + (2 if config.method != "sgd" else 0)) / sam_factor)
    per_epoch = EPOCH_COST_S.get((config.model, kind), 10.0)
    return per_epoch * sam_factor * work / 50_000


def run_sweep(name_or_sweep: str | Sweep, data_root: str | os.PathLike | None = None,
              device: str = "auto", results_dir: str | os.PathLike = "results",
              max_runs: int | None = None, time_budget: float | None = None,
              dry_run: bool = False, progress: bool = True,
              datasets: dict[str, ImageDataset] | None = None,
              save_models: bool = False, seeds: Iterable[int] | None = None) -> dict[str, Any]:
    """Run the unfinished runs of a sweep, in order; return counts and the runs done now.

    A result file that exists and parses is finished (diverged runs included) and is
    skipped. ``max_runs`` caps the runs started in this call; ``time_budget`` (seconds)
    stops before a run whose estimated time would overrun it. ``datasets`` maps registry
    names to already-loaded data sets (otherwise they are loaded once, from ``data_root``).
    ``save_models=True`` also writes the final weights to ``<run_id>.pt`` (a state_dict).
    ``seeds`` restricts this call to the runs with those training seeds (counts too).
    """
    sweep = get_sweep(name_or_sweep)
    if seeds is not None:
        seeds = list(seeds)
        if not seeds or not all(_is_int(x) and x >= 0 for x in seeds):
            raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {seeds!r}")
        sweep = Sweep(sweep.name, sweep.description, [c for c in sweep.runs if c.seed in seeds])
    if max_runs is not None and (not _is_int(max_runs) or max_runs < 0):
        raise ValueError(f"max_runs must be an int >= 0, got {max_runs!r}")
    if time_budget is not None and not (time_budget > 0):
        raise ValueError(f"time_budget must be > 0 seconds, got {time_budget!r}")
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    folder = Path(results_dir) / sweep.name
    done = {c.run_id(): read_result(folder / f"{c.run_id()}.json") for c in sweep.runs}
    finished = [r for r in done.values() if r is not None]
    todo = [c for c in sweep.runs if done[c.run_id()] is None]
    n_div = sum(r["status"] == "diverged" for r in finished)
    print(f"[{sweep.name}] {len(sweep.runs)} runs: {len(finished)} done "
          f"({n_div} diverged), {len(todo)} left; device {device}")
    if dry_run:
        total = 0.0
        for c in todo:
            est = estimate_seconds(c, device, finished)
            total += est
            print(f"  {c.run_id():70s} ~{est:8.1f} s")
        print(f"[{sweep.name}] estimated {total:.0f} s for {len(todo)} runs on {device}")
        return {"done": len(finished), "left": len(todo), "diverged": n_div, "ran": [],
                "estimate_s": total}
    datasets = dict(datasets or {})
    folder.mkdir(parents=True, exist_ok=True)
    ran: list[str] = []
    t0 = time.perf_counter()
    for c in todo:
        if max_runs is not None and len(ran) >= max_runs:
            break
        if time_budget is not None:
            est = estimate_seconds(c, device, finished)
            if time.perf_counter() - t0 + est > time_budget:
                print(f"[{sweep.name}] stopping: next run needs ~{est:.0f} s, budget left "
                      f"{time_budget - (time.perf_counter() - t0):.0f} s")
                break
        if c.dataset not in datasets:
            datasets[c.dataset] = load_dataset(c.dataset, root=data_root)
        out = train(c, datasets[c.dataset], device=device, progress=progress)
        rec = result_record(c, out, sweep.name, device)
        if save_models:  # weights first: a result file never points at missing weights
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{c.run_id()}.", suffix=".tmp")
            os.close(fd)
            torch.save({k: v.cpu() for k, v in out["model"].state_dict().items()}, tmp)
            os.replace(tmp, folder / f"{c.run_id()}.pt")
        write_json_atomic(folder / f"{c.run_id()}.json", rec)
        finished.append(rec)
        ran.append(c.run_id())
        n_div += rec["status"] == "diverged"
        acc = rec["final"]["test_acc"]
        print(f"  {c.run_id()}: {rec['status']}, test acc "
              f"{'-' if acc is None else f'{acc:.4f}'}, {rec['wall_time_s']:.1f} s")
    left = len(todo) - len(ran)
    print(f"[{sweep.name}] done {len(finished)}, left {left}, diverged {n_div} "
          f"({len(ran)} run now in {time.perf_counter() - t0:.0f} s)")
    return {"done": len(finished), "left": left, "diverged": n_div, "ran": ran}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sam_hallucination.experiments",
                                description="Run (a slice of) a named sweep; resumes.")
    p.add_argument("sweep", nargs="?", help="sweep name (see --list)")
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    p.add_argument("--data", default=None, help="folder (or .npz) with the data files")
    p.add_argument("--results", default="results", help="results folder (default results/)")
    p.add_argument("--max-runs", type=int, default=None, help="start at most N runs")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds; do not start a run that would overrun it")
    p.add_argument("--dry-run", action="store_true", help="list the runs left and estimates")
    p.add_argument("--list", action="store_true", help="list the sweeps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--save-models", action="store_true",
                   help="also save each run's final weights as <run_id>.pt")
    p.add_argument("--seeds", default=None,
                   help="comma-separated training seeds to run (default: all), e.g. 0 or 1,2")
    a = p.parse_args(argv)
    if a.list or not a.sweep:
        for name, make in SWEEPS.items():
            s = make()
            print(f"{name:25s} {len(s):4d} runs  {s.description}")
        return 0
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        seeds = None if a.seeds is None else [int(x) for x in a.seeds.split(",") if x.strip()]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {a.seeds!r}")
    run_sweep(a.sweep, data_root=a.data, device=a.device, results_dir=a.results,
              max_runs=a.max_runs, time_budget=a.time_budget, dry_run=a.dry_run,
              progress=not a.no_progress, save_models=a.save_models, seeds=seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
