"""Fashion-MNIST on a machine without Debian's package: fetched with pooch (hash-checked)
into the data cache from a local HTTP server standing in for the official one; offline, one
line naming both ways; and the test suite's data fixture never passes silently."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from conftest import require_dataset
from test_data import make_idx

import sam_hallucination.data.registry as R
from sam_hallucination.data import load_dataset
from sam_hallucination.data.__main__ import main as data_main


@pytest.fixture
def bare_machine(tmp_path, monkeypatch) -> Path:
    """No Debian folder, an empty data folder, an empty cache; returns the cache."""
    monkeypatch.setenv("SAM_FASHION_MNIST_DIR", str(tmp_path / "no-debian"))
    monkeypatch.setenv("SAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SAM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def official(tmp_path, monkeypatch) -> Iterator[tuple[str, dict]]:
    """Small IDX files served on 127.0.0.1, pinned in the registry as the official ones."""
    served = tmp_path / "served"
    made = make_idx(served)
    gz = {f"{s}.gz": "md5:" + hashlib.md5((served / f"{s}.gz").read_bytes()).hexdigest()
          for s in R.IDX_FILES}
    raw = {s: f"md5:{h}" for s, h in made["raw_md5"].items()}
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    spec = dataclasses.replace(R.DATASETS["fashion-mnist"], url=url, hashes={**gz, **raw})
    monkeypatch.setitem(R.DATASETS, "fashion-mnist", spec)
    try:
        yield url, made
    finally:
        server.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetched_into_the_cache_then_read_from_it_offline(bare_machine, official):
    url, made = official
    ds = load_dataset("fashion-mnist")
    np.testing.assert_array_equal(ds.x_train[..., 0], made["arrays"]["train-images-idx3-ubyte"])
    assert sorted(p.name for p in (bare_machine / "fashion-mnist").iterdir()) == sorted(
        f"{s}.gz" for s in R.IDX_FILES)
    spec = R.DATASETS["fashion-mnist"]
    R.DATASETS["fashion-mnist"] = dataclasses.replace(spec, url=f"http://127.0.0.1:{closed_port()}/")
    assert load_dataset("fashion-mnist").y_test.tolist() == ds.y_test.tolist()  # no network


def test_a_download_with_the_wrong_hash_is_refused(bare_machine, official, monkeypatch):
    spec = R.DATASETS["fashion-mnist"]
    bad = {**spec.hashes, "t10k-labels-idx1-ubyte.gz": "md5:" + "0" * 32}
    monkeypatch.setitem(R.DATASETS, "fashion-mnist", dataclasses.replace(spec, hashes=bad))
    with pytest.raises(R.DataIntegrityError, match="t10k-labels-idx1-ubyte.gz failed its hash"):
        load_dataset("fashion-mnist")


def test_offline_without_the_package_is_one_line_naming_both_ways(bare_machine, monkeypatch,
                                                                   capsys):
    spec = dataclasses.replace(R.DATASETS["fashion-mnist"],
                               url=f"http://127.0.0.1:{closed_port()}/")
    monkeypatch.setitem(R.DATASETS, "fashion-mnist", spec)
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("fashion-mnist")
    msg = str(e.value)
    assert "\n" not in msg and "no-debian" in msg and "failed (ConnectionError)" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "rerun online" in msg
    assert str(bare_machine / "fashion-mnist") in msg
    assert data_main(["fashion-mnist"]) == 1  # what `make book` / `make test` run first
    assert capsys.readouterr().err.strip() == msg


def test_a_named_folder_is_never_downloaded_into(tmp_path, official):
    with pytest.raises(FileNotFoundError, match="put the four IDX files"):
        load_dataset("fashion-mnist", root=tmp_path / "mine")
    assert not (tmp_path / "mine").exists()


def test_a_missing_data_set_skips_or_under_ci_stops_the_run(bare_machine, monkeypatch):
    spec = dataclasses.replace(R.DATASETS["fashion-mnist"],
                               url=f"http://127.0.0.1:{closed_port()}/")
    monkeypatch.setitem(R.DATASETS, "fashion-mnist", spec)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install dataset-fashion-mnist"):
        require_dataset("fashion-mnist")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.exit.Exception, match="missing data set .CI=true.: Fashion-MNIST"):
        require_dataset("fashion-mnist")
