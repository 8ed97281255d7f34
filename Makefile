# receiptd — the two commands of the README (make run, make test) and their helpers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= demo/receiptd.toml

.PHONY: install run test check format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the dependency set changes; the stamp keeps `make test` fast.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/receiptd demo init --dir .receiptd/demo
	$(BIN)/receiptd serve --config $(CONFIG)

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: check
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/apple_ingest.py
	$(BIN)/python bench/google_ingest.py
	$(BIN)/python bench/google_play_client.py

clean:
	rm -rf $(VENV) .receiptd .pytest_cache .mypy_cache .ruff_cache
