# The two commands: `make book` (build the book) and `make test` (run every test).
# Both create .venv and install requirements.txt on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
STAMP := $(VENV)/.installed
NBVAL := $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

.PHONY: install lock data execute figures book html test unit nbval lint bench browser-check mathjax lab clean

# requirements.txt lists what we use; requirements.lock pins every installed version, so a
# new upstream release cannot change the checked outputs or add a Sphinx warning unseen.
$(STAMP): requirements.txt requirements.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV) || { echo "python3 -m venv failed: install \
	  python3-venv (Debian/Ubuntu: apt-get install python3-venv)"; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt -c requirements.lock
	@touch $(STAMP)

install: $(STAMP)

## Find or fetch the data sets the chapters and tests need (Fashion-MNIST: Debian's folder,
## else a hash-checked download into the data cache); offline without it, one line and exit 1.
data: $(STAMP)
	@$(PY) -m sam_hallucination.data fashion-mnist

LAB_STAMP := $(VENV)/.lab-installed

# The tests also need the optional extra `distributed` (Ray, for the sweep runner's Ray
# backend); the book does not, so only the test targets depend on this stamp.
TEST_STAMP := $(VENV)/.installed-distributed
$(TEST_STAMP): $(STAMP) pyproject.toml requirements.lock
	$(PY) -m pip install -q -e '.[distributed]' -c requirements.lock
	@touch $(TEST_STAMP)

## Re-pin requirements.lock from the current .venv (after changing requirements.txt); it
## pins JupyterLab too (make lab, Binder), so it freezes with JupyterLab installed.
lock: $(LAB_STAMP)
	@{ sed -n '1,3p' requirements.lock; $(PY) -m pip freeze --exclude-editable \
	  | sed -E 's/^([^=]+==[^+]+)\+.*/\1/' | LC_ALL=C sort -f; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

# MathJax 3 is served from the book itself, not from a CDN, so math renders offline.
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
MATHJAX := .cache/static/mathjax/tex-mml-chtml.js

$(MATHJAX):
	@command -v npm >/dev/null || { echo "npm not found (it fetches MathJax): apt-get install npm \
	  (Debian/Ubuntu), or install Node.js from nodejs.org"; exit 1; }
	rm -rf .cache/mathjax-npm .cache/static/mathjax && mkdir -p .cache/mathjax-npm .cache/static/mathjax
	cd .cache/mathjax-npm && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null \
	  && echo "$(MATHJAX_SHA256)  mathjax-$(MATHJAX_VERSION).tgz" | sha256sum -c --quiet \
	  && tar -xzf mathjax-$(MATHJAX_VERSION).tgz
	cd .cache/mathjax-npm/package/es5 && cp -r --parents tex-mml-chtml.js a11y adaptors input output sre ui ../../../static/mathjax/
	cp .cache/mathjax-npm/package/LICENSE .cache/static/mathjax/
	rm -rf .cache/mathjax-npm

mathjax: $(MATHJAX)

## Execute every chapter with papermill, in _toc.yml order (PROFILE=quick|full).
execute: $(STAMP) data
	$(PY) scripts/execute_chapters.py --profile $(PROFILE)

## The main job: install, execute the chapters, build the HTML (warnings are errors).
book: execute figures html

## The landing page's key figure, drawn by the library.
figures: $(STAMP)
	$(PY) scripts/landing_figure.py

html: $(STAMP) $(MATHJAX)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Open _build/html/index.html"

## Load every page of the built book in headless Chromium (Debian's chromium + chromium-driver).
BROWSER_CHECK_ARGS ?= --expect-animation notebooks/ch02_hallucination.html
browser-check: html
	$(PY) tools/browser_check.py _build/html $(BROWSER_CHECK_ARGS)

## Every test: lint, unit tests, then nbval on every executed chapter.
test: data lint unit nbval

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts tools $(wildcard benchmarks)

unit: $(TEST_STAMP)
	$(PY) -m pytest tests -q -rs -p no:cacheprovider

nbval: $(STAMP)
	$(NBVAL) $$($(PY) scripts/execute_chapters.py --list | sed 's/\.md$$/.ipynb/')

## Open the chapters in JupyterLab (installed into .venv on first use); the .md sources open
## as notebooks through jupytext's "Open With" menu.
$(LAB_STAMP): $(STAMP) requirements.lock
	$(PY) -m pip install -q jupyterlab -c requirements.lock
	@touch $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf _build
