# alliance-risk: two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA ?= data/synthetic
PACKAGES := features validation models pipelines serving simulator batch monitoring reporting harness
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_ASYNC_LOGGING := false

.PHONY: help install run test test-fast lint format bench data train clean
.DEFAULT_GOAL := help

## help: list the targets with what each does
help:
	@awk '/^## /{sub(/^## /,""); if ($$0 ~ /^[a-z-]+: /) {printf "\n  make %s", $$0} else {printf "\n      %s", $$0}} END{print ""}' $(MAKEFILE_LIST)

# pip byte-compiles what it installs on one core (about 35 of a fresh install's 63 s here);
# compileall does the same on every core. Compiled either way: where PYTHONDONTWRITEBYTECODE is
# set, nothing would be compiled later. Not compiled: the packages' own test folders and pip and
# setuptools, which nothing here imports (9,885 of the 13,476 modules are left; 24.5-25.8 s ->
# 18.8 s on 2 cores). -qq and "|| true": like pip, a module that does not compile (a package's
# Python 2 test file) is not an error.
NOT_COMPILED := '/site-packages/(.*/)?tests?/|/site-packages/(pip|setuptools)/'
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -e '.[dev,spark]'
	$(BIN)/python -m compileall -qq -j 0 -x $(NOT_COMPILED) "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
	touch $(STAMP)

## install: make .venv and install the package with its dev and Spark extras (once per pyproject change)
install: $(STAMP)

## data: build the default synthetic cohort (SYNTHETIC data) if it is absent
data: install
	@test -f $(DATA)/intake.csv || $(BIN)/python -m pipelines.simulate --n 5000 --seed 7 --output $(DATA)

## train: train on the default cohort and register a champion if none exists
train: data
	$(BIN)/python -m pipelines.train --input $(DATA) --if-no-champion

## run: install, build the cohort, train a champion if needed, serve API and intake page on 127.0.0.1:3000
run: train
	$(BIN)/python -m pipelines.serve

## test: install and run the whole suite, in a random order (pytest-randomly; the seed is printed
## at the top: rerun that order with PYTEST_ADDOPTS=--randomly-seed=N). Installs what the suite needs
## outside Python (Debian's Chromium, Java 17+) through apt when missing, and stops if it cannot.
## (The project's own modules are byte-compiled first, as pip compiles the dependencies: where
## PYTHONDONTWRITEBYTECODE is set, as on this machine, every command the suite runs would compile
## them again: importing the training pipeline took 3.1-3.3 s from source, 2.8-2.9 s compiled.)
test: install
	bash tests/ensure_prereqs.sh
	$(BIN)/python -m compileall -q -j 0 $(PACKAGES)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=25

## test-fast: the suite without the slow training runs and the browser tests
test-fast: install
	$(BIN)/python -m pytest -n 2 -m "not slow and not browser"

## lint: ruff check and format check
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## format: ruff format and autofix
format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: run the benchmarks under bench/ (prints figures; see docs/benchmarks.md)
bench: install
	$(BIN)/python -m bench.train_scaling
	$(BIN)/python -m bench.explain_speed
	$(BIN)/python -m bench.serve_latency
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.batch_throughput

## clean: remove the venv, the synthetic cohort and the local MLflow store (keeps nothing trained)
clean:
	rm -rf $(VENV) data/synthetic mlruns/mlflow.db mlruns/artifacts mlruns/[0-9]* mlruns/models mlruns/audit.sqlite*
