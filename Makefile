# Quick start: `make demo` (sets up .venv and runs the offline demo) and `make test`.
# Windows without make: see README.md.
PYTHON ?= python3
VENV   ?= .venv
ifeq ($(OS),Windows_NT)
  BIN := $(VENV)/Scripts
else
  BIN := $(VENV)/bin
endif
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean lock

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: setup
	$(BIN)/mm demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/bench_book.py

# Re-pin every dependency to what is installed in the venv now.
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^mm-core' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks .hypothesis
