# ogpu-ipfs: the commands used to work on this project.  `make` lists them.
#
# `make demo` and `make test` need nothing but python3.  `make check` creates
# .venv with the pinned tools of requirements-dev.txt (from PyPI) and runs
# everything CI runs.

PYTHON ?= python3
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.requirements-dev.stamp
# Run the suite with exactly these interpreters instead of every CPython
# 3.6-3.13 found, e.g. `make check PYTHONS="python3.6 python3.13"`.
PYTHONS ?=

UNITTEST := -m unittest discover -s tests -t .
# busboy (Node's multipart parser, behind Express's multer) for `make interop`,
# installed from npm into this folder, outside git.
BUSBOY_VERSION := 1.6.0
INTEROP_NODE := .cache/interop
INTEROP_STAMP := $(INTEROP_NODE)/.busboy-$(BUSBOY_VERSION).stamp
LINT_PATHS = $(wildcard ogpu tests examples bench tools)
FIND_PYTHONS := OGPU_PYTHONS="$(PYTHONS)" $(PYTHON) tools/pythons.py

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
# The suites measure time bounds: never run two steps at once.
.NOTPARALLEL:
.PHONY: help demo test check venv lint typecheck floor matrix vendored property interop big \
        package coverage bench clean distclean

help:
	@echo "Usage: make <target>"
	@echo
	@echo "  demo       publish to a local gateway and fetch it back (python3 only)"
	@echo "  test       run the unittest suite on python3 (installs nothing)"
	@echo "  check      everything CI runs: the steps below, in this order"
	@echo "    venv       create .venv with the tools pinned in requirements-dev.txt"
	@echo "    lint       ruff on the code, tests, examples and tools"
	@echo "    typecheck  mypy --strict on ogpu/"
	@echo "    floor      vermin: prove ogpu/ runs on Python 3.6"
	@echo "    matrix     the unittest suite on every CPython 3.6-3.13 found"
	@echo "    vendored   ogpu/ipfs.py copied alone, under python -I -S, on each of them"
	@echo "    property   hypothesis: decoders raise one error type, tampering is caught"
	@echo "    interop    publish to the multipart parsers of real servers"
	@echo "    big        the multi-GiB memory-bound tests"
	@echo "    package    build sdist and wheel, install the wheel into fresh venvs, run it"
	@echo "  coverage   the suite under coverage, with a report"
	@echo "  bench      the side-by-side benchmarks (writes bench/RESULTS.md)"
	@echo "  clean      remove build output and caches"
	@echo "  distclean  clean, and remove .venv and .cache/ too"

demo:
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(PYTHON) examples/demo.py

test:
	$(PYTHON) $(UNITTEST)

check: venv lint typecheck floor matrix vendored property interop big package
	@echo
	@echo "make check: all steps passed"

venv: $(VENV_STAMP)

# Reinstalled only when requirements-dev.txt changes.
$(VENV_STAMP): requirements-dev.txt
	@echo "==> venv: $(VENV) with requirements-dev.txt"
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

lint: $(VENV_STAMP)
	@echo "==> lint: ruff"
	$(VENV)/bin/ruff --version
	$(VENV)/bin/ruff check $(LINT_PATHS)

typecheck: $(VENV_STAMP)
	@echo "==> typecheck: mypy --strict (settings in setup.cfg)"
	$(VENV)/bin/mypy --version
	$(VENV)/bin/mypy

# --eval-annotations: without `from __future__ import annotations`, 3.6
# evaluates annotations when a function is defined, so they count too.
floor: $(VENV_STAMP)
	@echo "==> floor: vermin, Python 3.6 at the oldest"
	$(VENV)/bin/vermin --version
	$(VENV)/bin/vermin -t=3.6- --no-tips --violations --eval-annotations ogpu/

matrix:
	@echo "==> matrix: the suite on every CPython 3.6-3.13"
	$(FIND_PYTHONS) run -- $(UNITTEST)

vendored:
	@echo "==> vendored: ogpu/ipfs.py alone as ogpu_ipfs.py"
	pythons="$$($(FIND_PYTHONS) list)" && \
	    $(PYTHON) -m tests.vendored_check --suite $$pythons

# Hypothesis properties of the decoders and the CAR verifier (dev tools' python).
property: $(VENV_STAMP)
	@echo "==> property: decoders and verifier under hypothesis"
	$(VENV_PYTHON) $(UNITTEST) -p 'property_*.py'

# The interop and big suites live in tests/interop_*.py and tests/big_*.py,
# outside `make test`.  unittest exits non-zero when it finds no tests, so
# each runs only once such files exist.
interop: $(VENV_STAMP) $(INTEROP_STAMP)
	@echo "==> interop: real multipart parsers"
	@if ls tests/interop_*.py >/dev/null 2>&1; then \
	    echo "$(VENV_PYTHON) $(UNITTEST) -p 'interop_*.py'"; \
	    $(VENV_PYTHON) $(UNITTEST) -p 'interop_*.py'; \
	else echo "no tests/interop_*.py yet: nothing to run"; fi

$(INTEROP_STAMP):
	@echo "==> interop: busboy $(BUSBOY_VERSION) from npm into $(INTEROP_NODE)"
	npm install --prefix $(INTEROP_NODE) --no-save --no-audit --no-fund busboy@$(BUSBOY_VERSION)
	touch $@

big:
	@echo "==> big: multi-GiB transfers at constant memory"
	@if ls tests/big_*.py >/dev/null 2>&1; then \
	    echo "$(FIND_PYTHONS) run -- $(UNITTEST) -p 'big_*.py'"; \
	    $(FIND_PYTHONS) run -- $(UNITTEST) -p 'big_*.py'; \
	else echo "no tests/big_*.py yet: nothing to run"; fi

package: $(VENV_STAMP)
	@echo "==> package: sdist and wheel, installed into fresh venvs"
	pythons="$$($(FIND_PYTHONS) list)" && \
	    $(PYTHON) tools/check_package.py --build-python $(VENV_PYTHON) $$pythons

coverage: $(VENV_STAMP)
	$(VENV_PYTHON) -m coverage erase
	$(VENV_PYTHON) -m coverage run --branch --source=ogpu $(UNITTEST)
	$(VENV_PYTHON) -m coverage report --show-missing

bench: $(VENV_STAMP)
	$(PYTHON) bench/run.py

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .cache/mypy .cache/ruff .coverage
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache
