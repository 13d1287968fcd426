# One task runner that mirrors CI. Every target installs what it needs first, so a fresh machine
# needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Downloads (pip wheels, Maven jars) are cached here and reused by later runs and fresh clones.
CACHE_DIR ?= $(HOME)/.cache/recs-engine
export PIP_CACHE_DIR := $(CACHE_DIR)/pip
export RECS_MAVEN_REPO := $(CACHE_DIR)/m2
export RECS_RUN_DIR ?= $(CURDIR)/run

.PHONY: install demo test test-unit lint typecheck bench-stream bench-serve alerts infra-up infra-down clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

infra/lib/.resolved: infra/pom.xml
	bash infra/fetch-jars.sh
	touch $@

install: $(BIN)/.installed infra/lib/.resolved
	bash infra/ensure-redis.sh

demo: install
	$(BIN)/recs demo

test: install
	bash infra/ensure-chromium.sh    # the browser tests (storefront widget, dashboard)
	bash infra/ensure-prometheus.sh  # alert rule tests and the real-Prometheus scrape test
	$(BIN)/pytest

test-unit: $(BIN)/.installed
	$(BIN)/pytest -m "not integration"

lint: $(BIN)/.installed
	$(BIN)/ruff check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy schemas state operators serving stream recs infra

bench-stream: install
	$(BIN)/recs bench-stream

bench-serve: $(BIN)/.installed
	bash infra/ensure-redis.sh
	bash infra/ensure-wrk.sh
	$(BIN)/recs bench-serve

alerts: $(BIN)/.installed
	bash infra/ensure-prometheus.sh
	$(BIN)/python -m infra.alerting --check
	$(BIN)/python -m infra.prometheus_server check-config
	promtool test rules infra/prometheus/alerts_test.yml

infra-up: install
	$(BIN)/recs infra up

infra-down:
	$(BIN)/recs infra down

clean:
	rm -rf $(VENV) infra/lib run build *.egg-info
