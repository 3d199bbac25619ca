# The two commands of the README: `make run` and `make test`. Both work on a new clone.
# Where the server listens is the app's setting: DISPATCH_HOST / DISPATCH_PORT from the
# environment or a .env file (`DISPATCH_PORT=9000 make run`); `make run PORT=9000` also works.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Options for the simulator under `make demo`; every demo guard carries a phone.
SIMULATE ?= --guards 200

ifeq ($(origin PORT),command line)
export DISPATCH_PORT := $(PORT)
endif
ifeq ($(origin HOST),command line)
export DISPATCH_HOST := $(HOST)
endif

.PHONY: run demo test bench lint migrate seed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m app migrate
	$(PY) -m app seed-demo
	$(PY) -m app serve

# `make run` plus simulated guards' phones, incidents and police (`python -m app simulate`).
# The server runs in the background (in its own session where `setsid` exists, so Ctrl-C
# reaches only the simulator, whose guards sign off first); leaving stops the server.
demo: $(VENV)/.installed
	$(PY) -m app migrate
	$(PY) -m app seed-demo
	@$$(command -v setsid) $(PY) -m app serve & server=$$!; \
	trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null' EXIT; \
	trap 'exit 130' INT TERM; \
	$(PY) -m app simulate --wait-ready 60 $(SIMULATE)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m bench.nearest
	$(PY) -m bench.ingest --db sqlite
	$(PY) -m bench.memory --connections 2000
	$(PY) -m bench.dispatch_latency --db sqlite
	$(PY) -m bench.webhooks --db sqlite
	$(PY) -m bench.positions_feed --db sqlite

lint: $(VENV)/.installed
	$(PY) -m ruff check app tests bench migrations
	$(PY) -m ruff format --check app tests bench migrations
	$(PY) -m mypy app

migrate: $(VENV)/.installed
	$(PY) -m app migrate

seed: $(VENV)/.installed
	$(PY) -m app seed-demo
