# Quick start: `make demo` (sandbox EHR + app on loopback), `make test` (whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast test-store bench bench-quick bench-hostile screenshot wheel clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[sandbox,test,prod,bench]'
	@touch $@

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not browser"

# the launch stores (SQLite, a live redis-server), key rotation, several instances, the installed wheel
test-store: $(STAMP)
	$(BIN)/python -m pytest -q tests/launches tests/deploy

# the installable package (templates, static files and gunicorn.conf.py mapped into app/ by setup.py)
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps -w dist .

bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

bench-hostile: $(STAMP)
	$(BIN)/python bench/run.py --only hostile

screenshot: $(STAMP)
	$(BIN)/python scripts/screenshot.py

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache instance build dist
