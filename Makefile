# Quick start targets: `make demo` (install + process the bundled fixture), `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,hatchet,celery,anthropic,serve,multilingual

.PHONY: install demo test lint bench clean-data

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/reflector process fixtures/meeting

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/run.py

clean-data:
	rm -rf recordings/*/ recordings/reflector.sqlite3*
