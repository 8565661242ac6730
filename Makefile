# The project's two commands: `make run` (the embedded default pipeline) and
# `make test` (the whole test suite). Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install clean-venv

install: $(STAMP)

# Reinstalls only when the dependency list changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "needs Python 3.11 (the torch==2.14.1 wheels on these machines are for 3.11); set PYTHON=..."; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[crf,cluster,test]'
	@touch $(STAMP)

# Ends on the run's headline numbers and where its report is (python -m mctformer docs headline).
run: $(STAMP)
	$(BIN)/snakemake --cores all
	@$(BIN)/python -m mctformer docs headline

# Lint first (ruff for Python, snakefmt for the rules, import-linter for the package's layers:
# the contracts in pyproject.toml), then the suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
