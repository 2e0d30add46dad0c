# `make demo` and `make test` set everything up from nothing (Python >= 3.11 and make are all they need).
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: a range left to pip would pull the newest torch with gigabytes of CUDA wheels.
TORCH ?= torch==2.13.0

.PHONY: demo test test-gpu lint bench

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/.installed  ## scan the bundled sample with the embedded default detector
	$(BIN)/mllm-protector scan examples/sample_pairs.jsonl -o -

test: $(BIN)/.installed lint  ## lint, type-check and run the whole test suite
	$(BIN)/python -m pytest

test-gpu: $(BIN)/.installed  ## the CUDA tests alone (on a GPU machine, with a CUDA build of torch in the venv)
	$(BIN)/python -m pytest -m gpu -v

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_detector.py
