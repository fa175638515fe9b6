# Two entry points: `make demo` (load the bundled sandbox into DuckDB) and `make test`.
# Both build .venv at the repository root on first use; `make test` also starts or installs the
# services its tests use (tests/services.sh).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test services lint typecheck docs unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/octopush-load --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	mkdir -p build/typecheck
	ln -sfn ../../provider build/typecheck/octopush_provider
	ln -sfn ../../dlt_source build/typecheck/octopush_dlt
	$(BIN)/mypy

# The pages of docs/ and the README, into build/site; a broken link or anchor fails it (mkdocs.yml).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

# PostgreSQL, Redis and chromium, started or installed when missing (see the script).
services:
	bash tests/services.sh

unit: $(STAMP) services
	$(BIN)/pytest

test: lint typecheck docs unit

# make bench BENCH_ARGS=--big adds the 1,000,000-conversation case
bench: $(STAMP)
	$(BIN)/python tests/benchmarks/load_speed.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.duckdb
