# kubeforge developer entry points. `make setup` is idempotent; every target sets itself up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= dev
OUT    ?= out/$(PROFILE)
# The shared offline mirror of upstream sources when it sits beside the checkout; else upstream.
MIRROR ?= $(if $(wildcard ../shared/mirror/github),../shared/mirror,)
MIRROR_FLAG := $(if $(MIRROR),--mirror $(MIRROR),)
PYTEST_ARGS ?=

.PHONY: setup test test-fast lint plan render validate bench clean

$(BIN)/kubeforge: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

setup: $(BIN)/kubeforge

test: setup
	bash scripts/test.sh $(PYTEST_ARGS)

test-fast: setup  ## everything but the test hosts (no root or systemd-nspawn needed)
	$(BIN)/pytest -q -m "not hosts" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check kubeforge tests benchmarks stacks components

plan: setup
	$(BIN)/kubeforge plan -p $(PROFILE)

render: setup
	$(BIN)/kubeforge render -p $(PROFILE) $(MIRROR_FLAG) -o $(OUT)

validate: setup
	$(BIN)/kubeforge validate -p $(PROFILE) $(MIRROR_FLAG)

bench: setup
	$(BIN)/python benchmarks/render.py $(MIRROR_FLAG)

clean:
	rm -rf out .pytest_cache
