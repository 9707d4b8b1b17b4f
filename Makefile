# The two commands: `make demo` and `make test` (and `make test-fast`, the inner loop). Both install what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= var
DEMO_QUESTIONNAIRES ?= 40000
export LDJ_DATA_DIR ?= $(DATA_DIR)

.PHONY: demo test test-fast bench venv node system-deps ckan-deps clean lock

demo: venv node
	$(BIN)/ldj db upgrade
	$(BIN)/ldj synth $(DATA_DIR)/demo-delivery --questionnaires $(DEMO_QUESTIONNAIRES) --lead-share 0.2 --seed 1
	$(BIN)/ldj ingest $(DATA_DIR)/demo-delivery --delivered-by "demo (synthetisch)" --no-progress --brief
	$(BIN)/ldj summary
	$(BIN)/ldj demo-accounts
	$(BIN)/ldj vraagbank demo
	$(BIN)/ldj registry demo
	$(BIN)/ldj airlock demo
	$(BIN)/ldj serve

# Two workers (pytest-xdist), one per core; each test module stays on one worker so its stack is started once.
test: venv node system-deps ckan-deps
	$(BIN)/ruff check ldj tests bench
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# The inner loop: domain and store on SQLite; no browser, hub, CKAN or PostgreSQL (tests/conftest.py says
# which modules are `slow`). `make test` before a commit that touches those.
test-fast: venv
	$(BIN)/ruff check ldj tests bench
	$(BIN)/pytest -q -m "not slow and not postgres"

bench: venv node
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/hostile.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/workspace.py
	$(BIN)/python bench/dashboards.py
	$(BIN)/python bench/refresh.py
	$(BIN)/python bench/portal.py

venv: $(VENV)/.installed

# configurable-http-proxy for JupyterHub, from the npm registry (package-lock.json pins it).
node: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

# Debian packages the test suite runs for real: the PostgreSQL server and chromium (Playwright drives it).
DEBIAN_PACKAGES := $(if $(wildcard /usr/lib/postgresql/*/bin/pg_ctl),,postgresql) $(if $(wildcard /usr/bin/chromium),,chromium)
system-deps:
	@if [ -n "$(strip $(DEBIAN_PACKAGES))" ]; then \
	  echo "Installing Debian packages: $(strip $(DEBIAN_PACKAGES))"; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	fi

# The real CKAN 2.12 that tests/test_ckan.py runs (its own venv, no Solr; skipped when installed).
ckan-deps:
	bash tests/ckan/install.sh

# Refresh the pinned versions after changing pyproject.toml.
lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) .venv-ckan node_modules .pytest_cache
