"""Scripts are called by SHA and survive servers that lose them, even twice in a row."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from redis.exceptions import NoScriptError

from yaml_workflow.state.stores.redis.scripts import Scripts


def forgetful(client: Any, times: int) -> list[int]:
    """Make the server forget every script just before each of the next ``times`` calls
    (a Redis restarted between redis-py's load and its call).  Returns the call count."""
    real, calls = client.evalsha, [0]

    def evalsha(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            client.script_flush()
        return real(*args)

    client.evalsha = evalsha
    return calls


def test_a_script_lost_again_between_its_load_and_its_call_still_runs() -> None:
    r = fakeredis.FakeRedis()
    scripts = Scripts(r)
    r.set("k", "token")
    calls = forgetful(r, times=3)
    assert scripts.compare_delete(keys=["k"], args=["token"]) == 1
    assert r.get("k") is None and calls[0] == 4


def test_a_server_that_never_keeps_the_script_is_an_error_not_a_loop() -> None:
    r = fakeredis.FakeRedis()
    scripts = Scripts(r)
    forgetful(r, times=10**6)
    with pytest.raises(NoScriptError):
        scripts.compare_delete(keys=["k"], args=["token"])
