"""Shared fixtures. A test that needs a data set asks for it here, so a missing data set is
never a silent pass: it skips the test with the loader's one line (``make unit`` prints skip
reasons), and under ``CI=true`` it stops the whole run with that line."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from sam_hallucination.data import ImageDataset, load_dataset


def require_dataset(name: str) -> ImageDataset:
    """``load_dataset(name)``, or skip (stop the run, under CI=true) with its one-line error."""
    try:
        return load_dataset(name)
    except FileNotFoundError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.exit(f"missing data set (CI=true): {e}", returncode=1)
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def fashion_mnist() -> ImageDataset:
    """Fashion-MNIST, found (Debian's folder, the data folder, the cache) or fetched."""
    return require_dataset("fashion-mnist")


def kill_started_by(marker: str) -> None:
    """SIGKILL the processes whose command line names ``marker`` (a Ray temp dir a test made),
    and their descendants (workers and agents, renamed ``ray::…``), by PID."""
    import psutil

    ours: set[int] = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        if any(marker in part for part in (p.info["cmdline"] or [])):
            with contextlib.suppress(psutil.Error):
                ours |= {p.pid} | {c.pid for c in p.children(recursive=True)}
    for pid in ours:
        with contextlib.suppress(OSError):  # gone already
            os.kill(pid, signal.SIGKILL)
