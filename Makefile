# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Until the service exists: train the whole catalog into ./store and list it.
run: $(STAMP)
	$(PY) -m service.cli train --all
	$(PY) -m service.cli models

test: $(STAMP)
	$(PY) -m ruff check nn service tests bench
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/train_predict.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
