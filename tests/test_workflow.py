"""The Pages workflow runs the README's command and publishes the built book; the Binder
environment installs torch's CPU build and a Jupyter front end, and nothing for development."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_pages_workflow_builds_with_the_readme_command_and_publishes_html():
    wf = yaml.safe_load((ROOT / ".github/workflows/book.yml").read_text())
    build = wf["jobs"]["build"]
    runs = [s.get("run", "") for s in build["steps"]]
    assert "make book" in runs and "make book" in (ROOT / "README.md").read_text()
    assert "make browser-check" in runs
    upload = [s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["permissions"]["pages"] == "write"
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy["steps"])


def test_the_book_has_a_baseurl_and_one_repository_url():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["html"]["baseurl"].startswith("https://")
    assert cfg["repository"]["url"].startswith("https://github.com/")


def test_binder_installs_cpu_torch_and_a_front_end_only():
    req = (ROOT / "binder/requirements.txt").read_text()
    lines = [ln.split("#")[0].strip() for ln in req.splitlines() if ln.split("#")[0].strip()]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert any(ln.startswith("torch==") and ln.endswith("+cpu") for ln in lines)
    assert any(ln.startswith("jupyterlab") for ln in lines)
    for dev in ("ruff", "pytest", "selenium", "jupyter-book", "nbval", "papermill"):
        assert not any(ln.startswith(dev) for ln in lines), dev
    assert "pip install --no-deps -e ." in (ROOT / "binder/postBuild").read_text()


def test_binder_and_make_lab_use_the_lock_files_versions():
    lock = dict(ln.split("==") for ln in (ROOT / "requirements.lock").read_text().splitlines()
                if "==" in ln and not ln.startswith("#"))
    lock = {k.lower().replace("_", "-"): v for k, v in lock.items()}
    req = (ROOT / "binder/requirements.txt").read_text().splitlines()
    pins = [ln.split("#")[0].strip() for ln in req if "==" in ln.split("#")[0]]
    assert pins and all(">" not in ln for ln in req if not ln.startswith("#"))
    for pin in pins:
        name, version = pin.split("==")
        assert lock[name.lower()] == version.split("+")[0], pin
    assert "jupyterlab" in lock
    assert "pip install -q jupyterlab -c requirements.lock" in (ROOT / "Makefile").read_text()
