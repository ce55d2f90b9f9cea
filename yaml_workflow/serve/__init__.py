"""The run dashboard, ``yaml-workflow serve``: runs and their steps in a browser, live.

A Starlette app (:func:`.app.create_app`) served by uvicorn (:func:`.server.serve`).
It holds no logic of its own: every page and action calls :mod:`yaml_workflow.client`.
Safe by default (:mod:`.security`): loopback only, Host header checked, read-only
without ``YAML_WORKFLOW_UI_TOKEN``, CSRF-protected actions, everything escaped.
Needs the ``serve`` extra (``pip install 'yaml-workflow[serve]'``).
"""

from __future__ import annotations

from ..exceptions import UsageError

EXTRA = "serve"


def require_extra() -> None:
    """UsageError (one line, exit 2) naming the extra when its packages are missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise UsageError(f"`yaml-workflow serve` needs the '{EXTRA}' extra ({err.name} is missing)",
                         hint=f"pip install 'yaml-workflow[{EXTRA}]'") from None
