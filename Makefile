# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Tests run with numba bounds checking on, in a cache of their own so that the
# bounds-checked machine code never serves the demo or the benchmarks.
TEST_ENV := NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(CURDIR)/.numba-cache/tests

.PHONY: setup demo test bench clean

# setup also compiles the engine for a replay with and without a market (what a first run would
# compile, announced step by step; a look-up when already cached). demo and test need only the
# install: their own first run compiles what it lacks (test in its bounds-checked cache).
setup: $(STAMP)
	$(BIN)/python -m workbench.runner.first_compile

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/workbench replay captures/market.pcapng --market captures/market.pcapng.market --out runs/demo

# One worker process per core (pytest-xdist); each test file stays on one worker, so a module's fixtures
# (a replay, a server) are made once.
test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -n auto --dist loadfile

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf runs .numba-cache .pytest_cache
