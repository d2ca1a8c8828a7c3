# Two commands for a new user: `make run` (live) / `make replay` (offline), and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run replay test browser clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Bootstrap and socket.io-client, pinned in package-lock.json, served by Flask from node_modules.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

run: setup
	$(PY) server.py $(ARGS)

replay: setup
	$(PY) server.py --replay $(ARGS)

test: setup
	$(PY) -m pytest $(ARGS)

# Debian's chromium for the real-browser tests (they are skipped without it, unless REQUIRE_BROWSER=1).
browser:
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) node_modules .pytest_cache test-results
