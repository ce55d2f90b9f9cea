# One image for every role of the fleet: the CLI (`yaml-workflow submit|status|...`),
# a Celery worker (`celery -A workers.app worker`) and Flower (`celery -A workers.app
# flower`). docker-compose.yml and deploy/kubernetes/ pick the role with the command.
#
#   docker build -t yaml-workflow .
#   docker run --rm yaml-workflow yaml-workflow --version
#
# Configuration is by environment only (YAML_WORKFLOW_BROKER_URL, ..._STATE_URL,
# ..._KEY_PREFIX, ..._WORKSPACE_ROOT, ..._VISIBILITY_TIMEOUT, ..._STEP_TIMEOUT); nothing
# secret is baked in.

ARG PYTHON_VERSION=3.11

# --- build: wheels of the package and its fleet dependencies -------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY yaml_workflow ./yaml_workflow
COPY workers ./workers
RUN pip wheel --wheel-dir /wheels '.[fleet]'

# --- runtime -------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm
# REMAP_SIGTERM=SIGQUIT: SIGTERM (docker stop, Kubernetes, systemd) starts Celery's soft
# shutdown: running steps get worker.soft_shutdown_timeout seconds to finish, then are
# cancelled and their messages go straight back to Redis for another worker (instead of
# waiting out the visibility timeout). Only Celery and billiard read it.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    YAML_WORKFLOW_WORKSPACE_ROOT=/data/runs \
    REMAP_SIGTERM=SIGQUIT

# tini as PID 1: forwards signals to the one process it starts and reaps the orphans
# that shell steps leave behind.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels 'yaml-workflow[fleet]' && rm -rf /wheels

# An unprivileged user; /data/runs belongs to it so that a fresh named volume mounted
# there (compose, Kubernetes) starts out writable. Workflow files live in /workflows
# (the bundled examples, or a directory mounted over it).
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/ywf ywf \
 && mkdir -p /data/runs /workflows \
 && chown ywf:ywf /data/runs
COPY --chown=root:root examples/ /workflows/

USER ywf
WORKDIR /home/ywf
EXPOSE 5555
ENTRYPOINT ["tini", "--"]
CMD ["yaml-workflow", "--help"]
