# The documented entry points.  Each target installs what it needs itself.
PYTHON ?= python3
# make test runs the suite in two processes; fault and timing tests (marked serial) run
# one at a time in one of them.
TEST_JOBS ?= 2
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
	@# the compose tool checks docker-compose.yml in the tests (Debian's docker-compose 1.29)
	@command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || \
	    (apt-get update -qq && apt-get install -y -qq docker-compose)
	touch $(STAMP)

install: $(STAMP)

# Workspaces of `make run` go under $(RUNS).  The last lines say how to call yaml-workflow
# by its bare name: it lives in the virtualenv, which is not on PATH until activated.
RUNS ?= runs

run: $(STAMP)
	$(VENV)/bin/yaml-workflow run examples/hello_world.yaml name=World --base-dir $(RUNS)
	@echo
	@echo "yaml-workflow is installed in $(VENV); to put it on PATH in this shell:"
	@echo "    . $(VENV)/bin/activate"

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_JOBS) --dist loadgroup

lint: $(STAMP)
	$(VENV)/bin/ruff check yaml_workflow workers tests bench
	$(VENV)/bin/mypy yaml_workflow

bench: $(STAMP)
	$(PY) bench/run_all.py

soak: $(STAMP)
	YWF_SOAK=1 $(PY) -m pytest -q -m "soak or serial" -p no:cacheprovider

acceptance: $(STAMP)
	$(PY) ../shared/acceptance/run.py --cli "$(CURDIR)/$(VENV)/bin/yaml-workflow"

# A local Redis for `make worker` / `make flower` / `yaml-workflow submit` (foreground,
# loopback only, nothing kept: the fleet's defaults point at redis://localhost:6379/0).
redis:
	@command -v redis-server >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq redis-server)
	redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no

worker: $(STAMP)
	$(VENV)/bin/yaml-workflow worker

# Flower for the local fleet, on loopback (no auth: the compose/Kubernetes/systemd
# deployments add basic auth).  `make flower FLOWER_PORT=5566` for another port; Flower
# itself reads FLOWER_BASIC_AUTH=user:password and FLOWER_UNAUTHENTICATED_API from the
# environment (its REST API answers 401 without one of them).
FLOWER_PORT ?= 5555

flower: $(STAMP)
	$(VENV)/bin/celery -A workers.app flower --address=127.0.0.1 --port=$(FLOWER_PORT) \
	    --tasks_columns=name,args,state,retries,received,runtime,worker

# docker compose: Compose v2 when the docker CLI has it, else docker-compose 1.x.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
WORKERS ?= 2

# The env file compose reads: deploy/env.example with fresh random passwords. Never
# overwritten once it exists; keep it out of git.
.env:
	@umask 077; sed -e "s/^REDIS_PASSWORD=.*/REDIS_PASSWORD=$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(32))')/" \
	    -e "s/^FLOWER_BASIC_AUTH=.*/FLOWER_BASIC_AUTH=admin:$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(12))')/" \
	    deploy/env.example > .env
	@echo "created .env with random passwords; Flower login: $$(sed -n 's/^FLOWER_BASIC_AUTH=//p' .env)"

up: .env
	$(COMPOSE) up -d --build --scale worker=$(WORKERS)

down:
	$(COMPOSE) down

# Redis, workers and a submitter as separate hosts (network namespaces) on this machine;
# a worker host is cut off in the middle of a step. Root only; about 1.5 minutes.
fleet-test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" YWF_BIN="$(CURDIR)/$(VENV)/bin/yaml-workflow" \
	    PYTHON="$(CURDIR)/$(PY)" bash deploy/fleet-test/fleet_test.sh

clean:
	rm -rf runs build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

.PHONY: flower-screenshot terminal-screenshot dashboard-screenshot

# docs/images/flower-tasks.png: a private Redis, two workers and Flower, two example runs,
# and headless Chromium (apt-get installs it when missing). Not run by CI.
flower-screenshot: $(STAMP)
	$(PY) scripts/flower-screenshot docs/images/flower-tasks.png

# docs/images/terminal-progress.png: the live display of `run` (rich), frozen mid-batch.
terminal-screenshot: $(STAMP)
	$(PY) scripts/terminal-screenshot docs/images/terminal-progress.png

# docs/images/dashboard-runs.png and dashboard-run.png: the dashboard (`yaml-workflow serve`)
# over a private fleet, in headless Chromium (apt-get installs it when missing).
dashboard-screenshot: $(STAMP)
	$(PY) scripts/dashboard-screenshot docs/images
