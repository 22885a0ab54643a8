# rlscale — set-up, tests, demo and benchmarks. `make demo` and `make test` install on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# A CPU build of torch by default, so a CPU-only machine does not pull a multi-GB CUDA wheel.
# On a GPU machine: make install TORCH=torch   (or TORCH='torch==2.6.0' etc.)
# With the vllm extra, the torch that vLLM 0.33 pins (it needs python>=3.11), so pip can resolve both.
TORCH  ?= $(if $(findstring vllm,$(EXTRAS)),torch==2.14.0,torch==2.13.0)
EXTRAS ?= train,plot,dev
PYTEST_ARGS ?=

.PHONY: install test demo demo-quick bench lint clean

$(BIN)/rlscale: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/rlscale

test: $(BIN)/rlscale
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

demo: $(BIN)/rlscale
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

demo-quick: $(BIN)/rlscale
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh --quick

bench: $(BIN)/rlscale
	$(BIN)/python -m benchmarks.run

lint: $(BIN)/rlscale
	$(BIN)/ruff check rlscale tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
