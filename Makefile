# Two commands: `make run` and `make test`. Everything else is a step they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN := gen
PROTOS := $(shell find protos -name '*.proto')

.PHONY: run test lint unit bench proto install compile clean compose-check browser

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) compile

# The ledger's hot domain modules compiled with mypyc (tools/native_build.py, list in
# pyproject.toml): rebuilt when a listed source changes, a no-op otherwise. Without it (or with
# LEDGER_COMPILED=0) the same modules run as Python; a stale build is never used.
compile: $(STAMP)
	$(PY) tools/native_build.py

$(GEN)/.stamp: $(PROTOS) $(STAMP)
	rm -rf $(GEN) && mkdir -p $(GEN)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iprotos --python_out=$(GEN) --grpc_python_out=$(GEN) \
		--mypy_out=$(GEN) --mypy_grpc_out=$(GEN) $(PROTOS)
	find $(GEN) -mindepth 1 -type d -exec touch {}/__init__.py \;
	echo "$(CURDIR)/$(GEN)" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/billing_gen.pth
	touch $(GEN)/.stamp

proto: $(GEN)/.stamp

run: proto compile
	$(PY) -m services.devstack

lint: proto
	$(PY) -m ruff check services tests bench migrations tools
	$(PY) -m mypy

unit: proto compile
	$(PY) -m pytest -q -m "not integration"

test: lint browser compile
	$(PY) -m pytest -q

bench: proto compile
	$(PY) -m bench

# The image and docker-compose.yml, built and run here: Docker engine and base images from
# Debian's packages when no registry is reachable (deploy/docker/local/compose-check.sh).
compose-check: proto
	bash deploy/docker/local/compose-check.sh

clean:
	rm -rf $(GEN) .pytest_cache .mypy_cache .ruff_cache
	test ! -x $(PY) || $(PY) tools/native_build.py --clean

# Browser tests (tests/browser): Debian's chromium driven by Playwright for Python. Installed
# here when missing, so `make test` runs them on a fresh machine too (they fail, never skip,
# without a browser). Playwright's own browser download is not used: executable_path points at
# $(CHROMIUM).
CHROMIUM ?= /usr/bin/chromium
browser: $(STAMP)
	test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium fonts-dejavu-core; }
	$(PY) -c 'import playwright.sync_api' 2>/dev/null || $(PY) -m pip install --quiet 'playwright>=1.45'
