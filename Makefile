# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: test demo lint typecheck bench clean screenshot docs

$(BIN)/ringctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

test: $(BIN)/ringctl
	$(BIN)/python -m pytest -q

demo: $(BIN)/ringctl
	$(BIN)/ringctl up topologies/quickstart.yaml

lint: $(BIN)/ringctl
	$(BIN)/ruff check ringctl kernels tests benchmarks
	$(BIN)/ruff format --check ringctl kernels tests benchmarks

typecheck: $(BIN)/ringctl
	$(BIN)/mypy

bench: $(BIN)/ringctl
	$(BIN)/python benchmarks/runtime_bench.py
	$(BIN)/python benchmarks/persistent_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The README's picture, from a real run of a checked-in topology (never drawn by hand).
screenshot: $(BIN)/ringctl
	$(BIN)/python benchmarks/screenshot.py topologies/sensor-anomaly.yaml docs/img/dashboard.svg

docs: $(BIN)/ringctl
	$(BIN)/python -m ringctl.cli.docs > docs/cli.md
