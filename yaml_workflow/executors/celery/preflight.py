"""Checks before a run is created on the fleet, and what it takes from the submitter.

``submit`` and ``submit --resume`` refuse everything they can before anything exists:
an unreachable broker or state store (one line within a few seconds, exit 3), and they
hand the run only the part of the submitter's environment that is not secret.
"""

from __future__ import annotations

from urllib.parse import urlparse

import redis

from ...engine.secrets import looks_secret
from ...exceptions import WorkflowError
from ...state.stores.redis.connection import ping

# Names whose values only make sense in the submitting process; the fleet's own
# settings (YAML_WORKFLOW_*, CELERY_*) are each worker's, never the submitter's.
_LOCAL_ONLY = ("PWD", "OLDPWD", "SHLVL", "_")
_FLEET_SETTINGS = ("YAML_WORKFLOW_", "CELERY_")


def check_reachable(url: str, what: str, error: type[WorkflowError]) -> None:
    """One clear line within a few seconds, before anything is created."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        return
    try:
        ping(url, timeout=2)
    except (redis.RedisError, OSError) as err:
        where = f"{parsed.hostname}:{parsed.port or 6379}"
        raise error(f"cannot reach the {what} at {where} ({type(err).__name__})",
                    hint="start Redis or set YAML_WORKFLOW_BROKER_URL / YAML_WORKFLOW_STATE_URL") from None
    except Exception as err:  # noqa: BLE001 - e.g. a malformed URL
        raise error(f"cannot reach the {what} {url}: {err}") from None


def exported_env(environ: dict[str, str], secrets: list[str], values: list[str]) -> dict[str, str]:
    """The submitter's environment as the run's `env`, without anything secret."""
    out = {}
    for name, value in environ.items():
        if (name in secrets or looks_secret(name, value) or name in _LOCAL_ONLY
                or name.startswith(_FLEET_SETTINGS)):
            continue
        if any(v and len(v) >= 3 and v in value for v in values):
            continue  # a copy of a secret under another name stays out of Redis too
        out[name] = value
    return out
