# The two commands of the README, and what they need. Everything installs into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

.PHONY: demo test lint format bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: 2.13.0 is a CPU build on disk here; an unpinned torch pulls CUDA wheels.
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default: build the demo JUNO dataset through the DVC pipeline,
# push it to the local DVC remote, print what was made and where it went, and plot the nominal
# spectrum by source (outputs/demo/juno_prompt_spectrum.png); train the seed-001 surrogate on it,
# log it to MLflow (mlflow.db, mlartifacts/) and register it as juno-spectrum; predict with it.
demo: $(STAMP)
	test -d .dvc || $(BIN)/dvc init --quiet
	$(BIN)/dvc repro
	$(BIN)/dvc push --quiet
	$(BIN)/oscflow summary data=$$(sed -n 's/^data: *//p' params.yaml)
	$(BIN)/oscflow predict plot=outputs/demo/juno_prompt_spectrum.png
	$(BIN)/oscflow train data=$$(sed -n 's/^data: *//p' params.yaml)
	$(BIN)/oscflow predict predictor=surrogate model=models:/juno-spectrum/latest

# The full test suite (also what CI runs).
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_predictors.py
	$(BIN)/python benchmarks/bench_surrogate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
