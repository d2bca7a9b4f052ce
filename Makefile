# RongTwin: the two commands.  `make demo` and `make test` set up everything
# they need themselves (virtual environment, packages, PostGIS, Chromium).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)
SIZE ?= medium
PORT ?= 8765

.PHONY: demo test venv setup-system setup-postgis bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

setup-system:
	bash scripts/setup_system.sh

setup-postgis: setup-system
	bash scripts/setup_postgis.sh

demo: venv
	$(BIN)/twin demo city.gpkg --size $(SIZE) --port $(PORT)

test: venv setup-postgis
	TWIN_TEST_PG_DSN=$${TWIN_TEST_PG_DSN:-postgresql://postgres@127.0.0.1:5432/twin_test} \
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

bench: venv
	$(BIN)/pip install -q -e '.[bench]'
	for b in benchmarks/store_load.py benchmarks/spatial_index.py benchmarks/bim_import.py benchmarks/flood.py \
	         benchmarks/traffic.py benchmarks/crowd.py benchmarks/access.py benchmarks/viewer.py; do \
	    [ -f $$b ] && { $(BIN)/python $$b || exit 1; }; done
	$(BIN)/python benchmarks/collect.py

clean:
	rm -rf $(VENV) .numba_cache city.gpkg
