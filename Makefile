# Every target sets itself up: a virtualenv in .venv with torch 2.13.0 installed first
# (a bare `torch` requirement can pull a multi-GB CUDA build), then the project.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lensbatch-installed
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test services lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Evaluate the sample corpus on an offline model: SQLite, no broker, no server.
# toy-induction has an induction head by construction, so the induction numbers (and
# `lensbatch heads JOB`) mean something. The job goes to the database every command
# reads (lensbatch.db here, or LENSBATCH_DATABASE_URL), and `run` ends with the next
# commands as they can be pasted (.venv/bin/lensbatch while .venv is not activated).
demo: setup
	$(BIN)/lensbatch run corpus/sample.jsonl --model toy-induction

# Redis and PostgreSQL binaries; the tests start their own servers on loopback.
services:
	bash scripts/install-services.sh

test: setup services
	$(BIN)/python -m pytest -q

# The benchmark suite: prints a table and writes it as JSON to bench-results/. Row i
# runs lm-evaluation-harness from a virtualenv of its own (.venv-lmeval, or
# LENSBATCH_LMEVAL_VENV), which the benchmark creates when missing; lm-eval is no
# dependency of lensbatch. On a CUDA machine: bash bench/gpu.sh.
bench: setup services
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check lensbatch worker scheduler migrations tests bench
	$(BIN)/mypy lensbatch worker scheduler bench migrations tests

# Removes the virtualenvs and the caches. lensbatch.db, where the demo and every job run
# here with the default database keep their results, stays: remove it yourself.
clean:
	rm -rf $(VENV) .venv-lmeval .pytest_cache .mypy_cache .ruff_cache
