# `make demo` and `make test` set everything up from nothing (Python >= 3.11 and make are all they need).
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: a range left to pip would pull the newest torch with gigabytes of CUDA wheels.
TORCH ?= torch==2.13.0
# Where torch comes from: PyTorch's CPU wheels by default (PyPI's Linux torch is the CUDA build, gigabytes);
# empty for PyPI's default build, or a CUDA index such as https://download.pytorch.org/whl/cu128.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test test-gpu lint bench

# The runtime alone (what `make demo` needs); `make test` adds the dev extra to the same environment.
$(BIN)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.dev: $(BIN)/.runtime
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/.runtime  ## scan the bundled sample with the embedded default detector
	$(BIN)/mllm-protector scan examples/sample_pairs.jsonl -o -

test: $(BIN)/.dev lint  ## lint, type-check and run the whole test suite
	$(BIN)/python -m pytest

test-gpu: $(BIN)/.dev  ## the CUDA tests alone (on a GPU machine, with a CUDA build of torch in the venv)
	$(BIN)/python -m pytest -m gpu -v

lint: $(BIN)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BIN)/.dev
	$(BIN)/python benchmarks/bench_detector.py
