# The two commands of the README:
#   make demo   set up, make the sample scene, pretrain on it, print the checkpoint,
#               the kNN probe and the commands of a first map
#   make test   set up, lint, type-check and run the test suite
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE ?= data/sample

.PHONY: demo test lint venv

venv:
	@scripts/bootstrap.sh

demo: venv
	$(BIN)/torchgeo-simclr demo --root $(SAMPLE)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n 2 --durations=10
