# Two entry points a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/simpletuner examples install
	$(BIN)/simpletuner server --sandbox

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest -q -p no:cacheprovider -n 2

bench: $(STAMP)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/packaging.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/webhooks.py

clean:
	rm -rf $(VENV)
