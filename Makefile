# One task runner that mirrors CI. Every target installs what it needs first, so a fresh machine
# needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Downloads (pip wheels, Maven jars) are cached here and reused by later runs and fresh clones.
CACHE_DIR ?= $(HOME)/.cache/recs-engine
export PIP_CACHE_DIR := $(CACHE_DIR)/pip
export UV_CACHE_DIR := $(CACHE_DIR)/uv
# Every install path installs exactly requirements.lock (versions and hashes), made from
# pyproject.toml by `make lock`; infra/lockcheck.py fails the install when the two disagree.
LOCK := requirements.lock
UV := $(BIN)/uv
UV_PY := --python $(BIN)/python
# The platform the lock is resolved for (the machines this project runs and is tested on).
LOCK_PYTHON := 3.11
export RECS_MAVEN_REPO := $(CACHE_DIR)/m2
export RECS_RUN_DIR ?= $(CURDIR)/run
# The JVM stages of the stream (stream/jvm/): one shaded jar, rebuilt when a source changes.
JVM_JAR := stream/jvm/target/recs-stream-jvm.jar
JVM_SOURCES := stream/jvm/pom.xml stream/jvm/build.sh $(shell find stream/jvm/src -type f 2>/dev/null)
# The compiled core (native/: Rust twins of the serving path's pure steps, serving/native.py),
# built with cargo from native/Cargo.lock into serving/_core*.so; cargo's downloads are cached
# under CACHE_DIR. Without cargo, or when the build fails, make says so and goes on: the server
# then runs the Python path (RECS_NATIVE=0 forces it).
export RECS_CARGO_HOME := $(CACHE_DIR)/cargo
NATIVE := native/target/.built
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/build.sh $(wildcard native/src/*.rs)

.PHONY: install prerequisites lock demo test test-cluster test-unit lint typecheck bench-stream bench-cluster bench-stages bench-serve bench-serve-simr bench-writer bench-memory alerts infra-up infra-down clean

# The installer itself, pinned with hashes (infra/lock/tools.txt), bootstrapped with pip.
$(UV): infra/lock/tools.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v < (3, 13) else \
		f"make: $(PYTHON) is Python {v[0]}.{v[1]}; this project needs 3.11 or 3.12 (the lock is \
	made for 3.11): install python3.11 and run make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r infra/lock/tools.txt
	touch $@

# `uv pip sync` makes .venv exactly the lock (it removes what the lock does not list), then the
# project itself goes in editable, built by the locked setuptools, with no dependency resolution.
$(BIN)/.installed: $(LOCK) pyproject.toml infra/lock/build.in $(UV)
	$(UV) pip sync -q $(UV_PY) --require-hashes $(LOCK) infra/lock/tools.txt
	$(UV) pip install -q $(UV_PY) --no-deps --no-build-isolation -e .
	$(BIN)/python -m infra.lockcheck
	touch $@

# Regenerate the lock after changing dependencies in pyproject.toml (keeps the other pins;
# `make lock UPGRADE=1` moves everything to the newest versions the ranges allow).
lock: $(UV)
	$(UV) pip compile -q infra/lock/tools.in --generate-hashes --python-version $(LOCK_PYTHON) \
		--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade,) -o infra/lock/tools.txt
	$(UV) pip compile -q pyproject.toml infra/lock/build.in --extra test --generate-hashes \
		--python-version $(LOCK_PYTHON) --custom-compile-command 'make lock' \
		$(if $(UPGRADE),--upgrade,) -o $(LOCK)
	$(BIN)/python -m infra.lockcheck --stamp

# Java 17 and Maven (the Kafka broker, the Flink connector, the JVM stages), from Debian's
# packages where they are missing.
prerequisites:
	bash infra/ensure-java.sh

infra/lib/.resolved: infra/pom.xml
	bash infra/ensure-java.sh
	bash infra/fetch-jars.sh
	touch $@

$(JVM_JAR): $(JVM_SOURCES)
	bash infra/ensure-java.sh
	bash stream/jvm/build.sh

$(NATIVE): $(NATIVE_SOURCES) $(BIN)/.installed
	@bash native/build.sh $(BIN)/python && touch $@ || \
		echo "make: the compiled core was not built (see above): the server runs the Python path"

install: $(BIN)/.installed $(NATIVE) infra/lib/.resolved $(JVM_JAR)
	bash infra/ensure-redis.sh

demo: install
	$(BIN)/recs demo

test: install
	bash infra/ensure-chromium.sh    # the browser tests (storefront widget, dashboard)
	bash infra/ensure-prometheus.sh  # alert rule tests and the real-Prometheus scrape test
	$(BIN)/pytest

# Only the cluster tests (Flink standalone, 3 Kafka brokers, Redis Cluster); `make test` runs them too.
test-cluster: install
	$(BIN)/pytest -m cluster

test-unit: $(BIN)/.installed $(NATIVE) $(JVM_JAR)
	$(BIN)/pytest -m "not integration"

lint: $(BIN)/.installed
	$(BIN)/ruff check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy schemas state operators serving stream recs infra

bench-stream: install  # the fast topology unless the environment says otherwise
	RECS_STREAM_RUNTIME=$${RECS_STREAM_RUNTIME:-jvm} RECS_WRITER=$${RECS_WRITER:-jvm} \
	    $(BIN)/recs bench-stream

# The cluster topology (Flink standalone, 3 Kafka brokers, Redis Cluster) with a TaskManager, a
# broker and a Redis master killed mid-stream, checked against the reference runner.
bench-cluster: install
	$(BIN)/python -m recs.bench_cluster

# Each stream stage alone, Python and its JVM twin: a generator source into a discarding sink.
bench-stages: install
	$(BIN)/recs bench-stages

# The update writer alone (recs.updates -> Redis) at the stream's mix and cadence.
bench-writer: install
	$(BIN)/python -m recs.bench_writer

# Bytes per user (at 1M users) and per item, in Redis and in the session state.
bench-memory: install
	$(BIN)/python -m recs.bench_memory

bench-serve: $(BIN)/.installed $(NATIVE)
	bash infra/ensure-redis.sh
	bash infra/ensure-wrk.sh
	$(BIN)/recs bench-serve

# The homepage with the second similar-items list off and on, two servers side by side, a warm
# learned blend served by both (recs/bench_serve_simr.py).
bench-serve-simr: $(BIN)/.installed $(NATIVE)
	bash infra/ensure-redis.sh
	$(BIN)/python -m recs.bench_serve_simr

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
	rm -rf $(VENV) infra/lib run build *.egg-info stream/jvm/target native/target serving/_core*.so
