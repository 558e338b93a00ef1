# Quick start targets: `make demo` (install + process the bundled fixture), `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,hatchet,celery,anthropic,serve,multilingual

.PHONY: install demo test lint bench clean-data

# models prepare: the int8 copy of the model, written once here rather than in the first run.
# compileall: an editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set every
# process would compile the package again (0.06 CPU-s+ in the CLI, 0.04 in each worker).
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -m compileall -q reflector_cli >/dev/null
	-$(BIN)/reflector models prepare
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
