# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-dev services-start services-stop unit bench bench-quality clean

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
	scripts/test-tools
	scripts/services start
	$(BIN)/python -m pytest; status=$$?; scripts/services stop; exit $$status

unit: install-dev
	$(BIN)/python -m pytest tests/unit app/core app/kafka app/http app/redis app/webhooks app/simulator.py app/metrics.py app/logs.py

## The benchmark table of the README (about 10 minutes; needs the services).
bench: install-dev
	$(BIN)/pip install --quiet -e '.[bench]'
	scripts/services start
	$(BIN)/python -m bench kafka --users 100000 --events 1000000 --per-message 1
	$(BIN)/python -m bench kafka --users 100000 --events 2000000 --per-message 20
	$(BIN)/python -m bench replay --users 100000 --events 1000000
	$(BIN)/python -m bench flapping
	$(BIN)/python -m bench quality
	$(BIN)/python -m bench rules
	$(BIN)/python -m bench sensor

## The quality benchmark alone (no services; a few minutes): personas k=3/6/9, CDNOW, stationary.
bench-quality: install-dev
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench quality

services-start:
	scripts/services start

services-stop:
	scripts/services stop

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
