# Playhouse: `make run` serves on :8000 with embedded defaults; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
APT_UPDATED := /tmp/.playhouse-apt-updated

.PHONY: run test lint format typecheck bench bench-quick bench-charts cluster service-deps system-test-deps clean

$(VENV)/.run-installed: requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.lock
	touch $@

$(VENV)/.dev-installed: requirements-dev.lock tests/requirements-interop.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements-dev.lock
	$(PIP) install --no-deps -r tests/requirements-interop.txt
	touch $(VENV)/.run-installed $@

run: $(VENV)/.run-installed
	$(PY) server.py

# Debian packages the cluster and the tests drive: redis-server (killed and restarted
# by tests), nginx (in front of several instances), chromium (Playwright cannot
# download browsers here), npm for jQuery.
service-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

system-test-deps: service-deps
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@test -d tests/e2e/node_modules/jquery || npm ci --prefix tests/e2e --no-audit --no-fund --silent

test: $(VENV)/.dev-installed system-test-deps
	$(PY) -m pytest

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.dev-installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Redis, the MongoDB server, N instances (N=2) and nginx on free ports; Ctrl-C stops them.
N ?= 2
cluster: $(VENV)/.run-installed service-deps
	$(PY) -m deploy.cluster --instances $(N)

# Benchmarks (bench/, needs redis-server and nginx): `make bench` runs every scenario (PNG
# charts into docs/bench/), `make bench-quick` a smoke run of each (charts into
# bench/results/charts-quick/). SCENARIOS="fanout relay" picks some; `.venv/bin/python -m bench
# --list` names them with their expected durations. Each run writes
# bench/results/summary[-quick].md and .json.
SCENARIOS ?=
bench: $(VENV)/.dev-installed service-deps
	$(PY) -m bench $(SCENARIOS)

bench-quick: $(VENV)/.dev-installed service-deps
	$(PY) -m bench --quick $(SCENARIOS)

# Redraw docs/bench/*.png from the last full results (bench/results/*.json).
bench-charts: $(VENV)/.dev-installed
	$(PY) -m bench.charts $(SCENARIOS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
