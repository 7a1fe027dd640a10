# The two commands: `make book` (build the book) and `make test` (run every test).
# Both create .venv and install requirements.txt on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
STAMP := $(VENV)/.installed
NBVAL := $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

.PHONY: install execute book html test unit nbval lint bench browser-check clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

## Execute every chapter with papermill, in _toc.yml order (PROFILE=quick|full).
execute: $(STAMP)
	$(PY) scripts/execute_chapters.py --profile $(PROFILE)

## The main job: install, execute the chapters, build the HTML (warnings are errors).
book: execute html

html: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Open _build/html/index.html"

## Every test: lint, unit tests, then nbval on every executed chapter.
test: lint unit nbval

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts $(wildcard benchmarks)

unit: $(STAMP)
	$(PY) -m pytest tests -q -p no:cacheprovider

nbval: $(STAMP)
	$(NBVAL) $$($(PY) scripts/execute_chapters.py --list | sed 's/\.md$$/.ipynb/')

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf _build
