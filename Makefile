# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-dev services-start services-stop unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The stamp files re-run pip only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Run the main job on embedded defaults: simulated personas -> live segments, no server needed.
demo: install
	$(BIN)/segstream demo

## Set everything up, start Kafka and Redis, run the whole suite, stop the services.
test: install-dev
	scripts/services start
	$(BIN)/python -m pytest; status=$$?; scripts/services stop; exit $$status

unit: install-dev
	$(BIN)/python -m pytest tests/unit app/core

bench: install-dev
	$(BIN)/python -m bench --help

services-start:
	scripts/services start

services-stop:
	scripts/services stop

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
