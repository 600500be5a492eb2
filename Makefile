# blazedit — `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
BLAZEDIT := $(VENV)/bin/blazedit
TORCH_VERSION ?= 2.13.0
# PyPI's Linux torch is the CUDA build (GBs of CUDA libraries); the CPU build has an index of its own.
# TORCH_INDEX= (empty) installs torch from pip's configured sources instead (CI's local CPU wheel).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=ON

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: $(VENV)/.setup-done ## create .venv and install everything (CPU torch $(TORCH_VERSION) first, TORCH_INDEX=...; then editable installs)

$(VENV)/.setup-done: server/pyproject.toml lsp/pyproject.toml clients/python/pyproject.toml models/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==$(TORCH_VERSION)
	$(PIP) install --quiet -e clients/python -e models -e lsp -e "server[test]"
	@echo "building llama-cpp-python from source (CPU, native flags; ~5-10 min the first time, then pip's wheel cache)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --quiet -e "server[llamacpp]"
	touch $@

models: setup ## fetch and convert the default model pair into the cache
	$(BLAZEDIT) models fetch

SERVE_ARGS ?=
serve: models ## run the daemon on 127.0.0.1:8000 with the default pair (fetched first if needed; SERVE_ARGS=...)
	$(BLAZEDIT) serve $(SERVE_ARGS)

test: setup clients ## run the test suite (builds the VS Code extension first: its tests read the build)
	$(PY) -m pytest -q -ra

BENCH_BACKEND ?= transformers
BENCH_ARGS ?= --sets humanevalfix-python editeval --limit 10
bench: models ## every strategy side by side on 20 edit tasks (~30 min on 2 idle cores, llama.cpp ~17; BENCH_BACKEND=llamacpp, BENCH_ARGS=...)
	$(BLAZEDIT) bench --backend $(BENCH_BACKEND) $(BENCH_ARGS)

lint: setup ## ruff over the whole repository
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clients: ## build, unit-test and package the VS Code extension; fetch the npm packages the client tests read
	cd clients/vscode && npm ci --no-audit --no-fund && npm test && npm run package
	npm ci --no-audit --no-fund --prefix tests/clients

.PHONY: help setup models serve test lint clients bench
