# rlscale — set-up, tests, demo and benchmarks. `make demo` and `make test` install on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# A CPU build of torch by default, so a CPU-only machine does not pull a multi-GB CUDA wheel.
# On a GPU machine: make install TORCH=torch   (or TORCH='torch==2.6.0' etc.)
# With the vllm extra, the torch that vLLM 0.33 pins (it needs python>=3.11), so pip can resolve both.
TORCH  ?= $(if $(findstring vllm,$(EXTRAS)),torch==2.14.0,torch==2.13.0)
EXTRAS ?= train,plot,dev
# VeRL 0.9.1 as the tests' oracle (tests/verl_oracle.py), in its own folder: hydra-core 1.3 pins
# antlr4 4.9, math-verify runs on 4.13 (under 4.9 it grades some answers differently), so the
# two never share an interpreter. No Ray or vLLM: nothing the tests ask of VeRL needs them.
VERL_ORACLE ?= verl==0.9.1 hydra-core==1.3.8 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 \
	codetiming==1.4.0 tensordict==0.10.0 pyvers==0.1.0 cloudpickle
PYTEST_ARGS ?=

.PHONY: install test demo demo-quick bench lint clean

$(BIN)/rlscale: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	$(if $(findstring dev,$(EXTRAS)),rm -rf $(VENV)/verl-oracle && $(BIN)/python -m pip install \
		--quiet --no-deps --target $(VENV)/verl-oracle $(VERL_ORACLE))
	touch $@

install: $(BIN)/rlscale

# --dist loadfile: a module's tests share one worker, so a module-scoped fixture (the quick demo
# run of test_demo_pipeline) runs once, not once per worker
test: $(BIN)/rlscale
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

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
