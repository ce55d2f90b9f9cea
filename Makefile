# The documented entry points.  Each target installs what it needs itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint bench soak redis worker flower up down fleet-test acceptance clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	@command -v redis-server >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq redis-server)
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/yaml-workflow run examples/hello_world.yaml name=World --base-dir runs

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check yaml_workflow workers tests bench
	$(VENV)/bin/mypy yaml_workflow

bench: $(STAMP)
	$(PY) bench/run_all.py

soak: $(STAMP)
	$(PY) -m pytest -q -m soak -p no:cacheprovider

acceptance: $(STAMP)
	$(PY) ../shared/acceptance/run.py --cli "$(CURDIR)/$(VENV)/bin/yaml-workflow"

redis:
	redis-server --port 6379 --save "" --appendonly no

worker: $(STAMP)
	$(VENV)/bin/yaml-workflow worker

flower: $(STAMP)
	$(VENV)/bin/celery -A workers.app flower --port=5555

up:
	docker compose up -d --scale worker=2

down:
	docker compose down

clean:
	rm -rf runs build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
