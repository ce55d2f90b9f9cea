"""Serving the dashboard with uvicorn, after the safety checks."""

from __future__ import annotations

import sys

from .security import ServeOptions, check_bind


def serve(options: ServeOptions) -> None:
    """Check the bind address (UsageError when unsafe), then serve until interrupted."""
    check_bind(options)
    import uvicorn

    from .app import create_app

    mode = "actions for those who sign in with the token" if options.actions else "read-only"
    shown = f"[{options.host}]" if ":" in options.host else options.host
    print(f"yaml-workflow dashboard on http://{shown}:{options.port}/ ({mode})", file=sys.stderr, flush=True)
    # No proxy headers: the Host check must see what the browser sent.
    uvicorn.run(create_app(options), host=options.host, port=options.port, log_level="warning",
                proxy_headers=False, server_header=False, access_log=False)
