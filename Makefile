PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?=

.PHONY: install install-test run test lint bench clean

# the C extensions are built by the install: rebuild when their sources change
$(BIN)/otel-receiver: pyproject.toml exporters/clickhouse/_rows.c otel_receiver/_spanscan.c otel_receiver/_wire.h
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

install: $(BIN)/otel-receiver

$(VENV)/.test-deps: pyproject.toml $(BIN)/otel-receiver
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install-test: $(VENV)/.test-deps

run: install
	$(BIN)/otel-receiver run $(if $(CONFIG),--config $(CONFIG),)

test: install-test
	bash tests/system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) otel-data bench/out
