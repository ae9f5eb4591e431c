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

.PHONY: setup test test-fast test-hosts lint plan render validate verify bench bench-nodes clean

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

test-hosts: setup  ## only the Ansible roles on real booted-systemd test hosts (root)
	bash scripts/ci-hosts-deps.sh $(BIN)/python
	$(BIN)/pytest -q tests/ansible $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check kubeforge tests benchmarks stacks components

plan: setup
	$(BIN)/kubeforge plan -p $(PROFILE)

render: setup
	$(BIN)/kubeforge render -p $(PROFILE) $(MIRROR_FLAG) -o $(OUT)

validate: setup
	$(BIN)/kubeforge validate -p $(PROFILE) $(MIRROR_FLAG)

verify: setup  ## conformance suite against the cluster KUBECONFIG names
	mkdir -p out
	$(BIN)/kubeforge verify -p $(PROFILE) $(MIRROR_FLAG) --junit out/verify-junit.xml --json-file out/verify.json

bench: setup
	$(BIN)/python benchmarks/render.py $(MIRROR_FLAG)
	$(BIN)/python benchmarks/pulumi_mock.py $(MIRROR_FLAG)

bench-nodes: setup  ## converge 1 vs 3 real test hosts (root, a few minutes)
	bash scripts/ci-hosts-deps.sh $(BIN)/python
	$(BIN)/python benchmarks/nodes.py

clean:
	rm -rf out .pytest_cache
