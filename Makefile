# The two commands of the README: `make run` and `make test`. Both work on a new clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench lint migrate seed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m app migrate
	$(PY) -m app seed-demo
	$(PY) -m app serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m bench.nearest
	$(PY) -m bench.ingest --db sqlite
	$(PY) -m bench.memory --connections 2000
	$(PY) -m bench.dispatch_latency --db sqlite
	$(PY) -m bench.webhooks --db sqlite

lint: $(VENV)/.installed
	$(PY) -m ruff check app tests bench migrations

migrate: $(VENV)/.installed
	$(PY) -m app migrate

seed: $(VENV)/.installed
	$(PY) -m app seed-demo
