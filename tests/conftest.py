"""Shared fixtures: a real redis-server per session (and per test when it must be killed)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer
from yaml_workflow.settings import reset_settings

# Nothing in the tests may reach the machine's own Redis on 6379 by accident.
os.environ["YAML_WORKFLOW_BROKER_URL"] = "redis://127.0.0.1:1/0"
os.environ.pop("YAML_WORKFLOW_STATE_URL", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fault and timing tests (``serial``) run one at a time: under ``make test``'s two
    xdist processes they form one group, which a single process runs in order."""
    for item in items:
        if item.get_closest_marker("serial"):
            item.add_marker(pytest.mark.xdist_group("serial"))


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are read once per process: each test reads the environment it set up."""
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; tests isolate themselves with key prefixes."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture()
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone (it may kill or restart it)."""
    server = RedisServer().start()
    yield server
    server.stop()
