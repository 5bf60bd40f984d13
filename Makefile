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

.PHONY: setup demo test bench bench-book bench-collector bench-capture-rate bench-analyze bench-features bench-backtest bench-private bench-strategy bench-sweep-scale clean lock

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: setup
	$(BIN)/mm demo

test: setup
	$(BIN)/python -m pytest -q

# Every benchmark prints our figure beside the named peer's on the same data, in the same run.
bench: bench-book bench-collector bench-capture-rate bench-analyze bench-features bench-backtest bench-private bench-strategy bench-sweep-scale

bench-book: setup         ## adapter parse+book+CRC32 vs python-kraken-sdk, on the real v2 recording
	$(BIN)/python bench/bench_book.py

bench-collector: setup    ## collector CPU per 1k msgs and capture overhead at 1,000 msg/s
	$(BIN)/python bench/bench_collector.py

bench-capture-rate: setup ## injected vs measured ages at the simulator's 1x/10x/50x, default flush intervals
	$(BIN)/python bench/bench_capture_rate.py

bench-analyze: setup      ## latency analyzer on 5M rows vs pandas (C and pyarrow parsers)
	$(BIN)/python bench/bench_analyze.py

bench-features: setup     ## research features on a simulated day vs the same features in plain pandas
	$(BIN)/python bench/bench_features.py

bench-backtest: setup     ## mm backtest vs hftbacktest 2.4.4, whole processes, cold/warm, RSS, two simulated days
	$(BIN)/python bench/bench_backtest.py

bench-private: setup     ## order round trip on loopback vs bare websockets; per-fill cost vs orjson
	$(BIN)/python bench/bench_private.py

bench-strategy: setup    ## decision cost per strategy (backtest ns, Python step us), throughput vs the loop before it
	$(BIN)/python bench/bench_strategy.py $(if $(REF),--reference-tree $(REF),)

bench-sweep-scale: setup ## mm sweep, 50 sets x 7 simulated days: Dask 1 vs 2 workers beside the process pool
	$(BIN)/python bench/bench_sweep_scale.py

# Re-pin every dependency to what is installed in the venv now.
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^mm-core' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks .hypothesis
