# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: run test test-fast test-postgres lint docs openapi protos test-container lock bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# Trains the catalog into ./store if it is empty, then serves on http://127.0.0.1:8000 (Ctrl-C stops).
run: $(VENV)/.installed
	$(VENV)/bin/nnserve serve

# Lint, format, types and layers over the whole repository.
# mypy checks the `files` of [tool.mypy] in pyproject.toml: nn/ with --strict's flags, service/.
# lint-imports checks the contracts of [tool.importlinter] in pyproject.toml (the layers, and what may not import what).
lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

# The whole suite (the documentation site too: tests/test_docs_site.py); it ends with the 15 slowest tests, then what was skipped and why (tests/conftest.py).
# PostgreSQL tests start Debian's postgresql-15 when installed, else the test extra's wheel (NNSERVE_TEST_PG).
test: lint
	$(PY) -m pytest --durations=15

# The inner loop, under a minute: lint, then the unit tests on every core (pytest-xdist): all but the suites that
# start servers, processes or PostgreSQL (below), less the tests marked slow and the PostgreSQL cases of the rest.
# Any folder or file of tests/ also runs alone with pytest.
INTEGRATION := tests/e2e tests/postgres tests/contract tests/client tests/cli tests/packaging
test-fast: lint
	$(PY) -m pytest -q -n auto -m 'not slow' -k 'not postgres' $(INTEGRATION:%=--ignore=%) --durations=5 tests

# The PostgreSQL tests alone (the contract suites' postgres half); NNSERVE_TEST_PG=wheel or =system picks the server.
test-postgres: $(VENV)/.installed-test
	$(PY) -m pytest -k postgres --durations=5 tests/postgres tests/contract

# The documentation site (mkdocs.yml) into site/: strict (a broken link or a warning fails), offline (no font,
# no CDN). Its reference pages are generated from the code at build time; tests/test_docs_site.py builds it too.
docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# Regenerates the committed OpenAPI document after a route or schema changed (tests/client checks it).
openapi: $(VENV)/.installed
	$(PY) -m service.cli openapi > openapi.json

# Regenerates the committed gRPC modules from their .proto with the test extra's pinned grpcio-tools
# (tests/server/test_grpc_protos.py runs this into a temp dir and compares). OUT: where they go.
PROTO := service/server/grpc/grpc_predict_v2.proto
OUT ?= .
protos: | $(VENV)/bin/python
	$(PY) -m grpc_tools.protoc -I . --python_out=$(OUT) --pyi_out=$(OUT) --grpc_python_out=$(OUT) $(PROTO)

# The Docker image and the compose stack, built and run for real with rootful podman. Needs root;
# installs podman, debootstrap and the rest itself (see scripts/container-test.sh).
test-container: $(VENV)/.installed-test
	bash scripts/container-test.sh

# requirements.lock: the exact runtime dependencies (pyproject's `dependencies`, the extras of IMAGE_EXTRAS and
# their closure), with hashes, for the image (Linux x86_64, CPython 3.11). Keeps the current pins where they still satisfy
# pyproject.toml; `make lock UPGRADE=--upgrade` moves every pin to the newest release.
UV_VERSION := 0.13.9
IMAGE_EXTRAS := otel postgres
lock: | $(VENV)/bin/python
	$(PY) -m pip install --quiet 'uv==$(UV_VERSION)'
	$(VENV)/bin/uv pip compile pyproject.toml $(IMAGE_EXTRAS:%=--extra %) --quiet --generate-hashes --no-header \
	    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu $(UPGRADE) -o requirements.lock
	{ printf '%s\n' \
	    '# Runtime dependencies of the image, exact and hashed: the Dockerfile installs them with' \
	    '# `pip install --require-hashes --no-deps -r requirements.lock`, then nnserve itself with --no-deps.' \
	    '# For Linux x86_64, CPython 3.11 (the base image). Generated from pyproject.toml by `make lock`' \
	    '# (uv $(UV_VERSION) pip compile --generate-hashes); `make lock UPGRADE=--upgrade` moves every pin to' \
	    '# the newest release. Not edited by hand; tests/packaging/test_lock.py checks it against pyproject.toml.'; \
	  sed -n '/^[A-Za-z0-9]/,$$p' requirements.lock; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

# Benchmarks print ratios against baselines run in the same process or run; they are not tests.
# Every script writes bench/results/<name>.md; bench/report.py assembles them into bench/RESULTS.md.
bench: $(VENV)/.installed-test
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/train_predict.py
	$(PY) bench/http_predict.py
	$(PY) bench/prediction_log.py
	$(PY) bench/prediction_log_budget.py
	$(PY) bench/auth_keys.py
	$(PY) bench/canary_routing.py
	$(PY) bench/monitoring_read.py
	$(PY) bench/slow_clients.py
	$(PY) bench/json_amplification.py
	$(PY) bench/retrain_p99.py
	$(PY) bench/gunicorn_settings.py
	$(PY) bench/ui_page.py
	$(PY) bench/postgres.py
	$(PY) bench/outage_503.py
	$(PY) bench/tracing_overhead.py
	$(PY) bench/explain.py
	$(PY) bench/mlserver.py
	$(PY) bench/soak.py; status=$$?; $(PY) bench/report.py; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
