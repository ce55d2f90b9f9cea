"""``yaml-workflow serve``: the run dashboard (the ``serve`` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..exceptions import EXIT_OK
from ..settings import get_settings


def add_parser(sub: Any) -> None:
    """Register `serve`."""
    parser = sub.add_parser("serve", help="the run dashboard in a browser (pip install 'yaml-workflow[serve]')")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; another needs YAML_WORKFLOW_UI_TOKEN "
                             "or --public-read-only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--base-dir", type=Path, help="where local workspaces are (default: "
                                                       "YAML_WORKFLOW_WORKSPACE_ROOT and ./runs)")
    parser.add_argument("--public-read-only", action="store_true",
                        help="serve a non-loopback address without a token: everyone who reaches it reads "
                             "every run, nobody can act")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="a host name browsers use to reach the dashboard (repeatable; the bind address "
                             "and, on loopback, localhost are always allowed)")
    parser.set_defaults(handler=handle_serve)


def handle_serve(args: argparse.Namespace) -> int:
    """Check the extra and the address, then serve until interrupted."""
    from .. import serve

    serve.require_extra()
    from ..serve.security import ServeOptions
    from ..serve.server import serve as run_server

    token = get_settings().ui_token
    run_server(ServeOptions(
        host=args.host, port=args.port, base_dir=args.base_dir,
        token=token.get_secret_value() if token is not None else None,
        public_read_only=args.public_read_only, allowed_hosts=tuple(args.allow_host)))
    return EXIT_OK
