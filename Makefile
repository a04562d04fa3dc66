# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: test demo lint typecheck bench clean screenshot docs

# Two stamps: the demo needs ringctl with its fast paths (uvloop, Numba), the tests and
# tools need the dev extra (Ray, mypy, ...). The dev install covers the demo's too.
DEMO = $(VENV)/.installed-demo
DEV  = $(VENV)/.installed-dev

$(DEMO): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[fast,numba]'
	@touch $@

$(DEV): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(DEMO)

# Two processes: most tests wait on subprocesses and sockets, so two share two cores well.
TEST_WORKERS ?= 2
test: $(DEV)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

demo: $(DEMO)
	QUICKSTART_RATE=$${QUICKSTART_RATE:-30} $(BIN)/ringctl up topologies/quickstart.yaml

lint: $(DEV)
	$(BIN)/ruff check ringctl kernels tests benchmarks
	$(BIN)/ruff format --check ringctl kernels tests benchmarks

typecheck: $(DEV)
	$(BIN)/mypy

bench: $(DEV)
	$(BIN)/python benchmarks/runtime_bench.py
	$(BIN)/python benchmarks/startup_bench.py
	$(BIN)/python benchmarks/persistent_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The README's picture, from a real run of a checked-in topology (never drawn by hand).
screenshot: $(DEV)
	$(BIN)/python benchmarks/screenshot.py topologies/sensor-anomaly.yaml docs/img/dashboard.svg

docs: $(DEV)
	$(BIN)/python -m ringctl.cli.docs > docs/cli.md
