"""``yaml-workflow config``: the effective settings, each under its variable name."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..exceptions import EXIT_OK
from ..settings import describe, get_settings
from .output import dump, short


def add_parser(sub: Any) -> None:
    """Register `config`."""
    parser = sub.add_parser("config", help="the effective settings and where each came from")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=handle_config)


def handle_config(args: argparse.Namespace) -> int:
    """Print every setting: variable, value (secrets masked), default or environment."""
    rows = describe(get_settings())
    if args.format == "json":
        sys.stdout.write(dump(rows, "json"))
        return EXIT_OK
    width = max(len(row["variable"]) for row in rows)
    for row in rows:
        value = "(unset)" if row["value"] is None else str(row["value"])
        print(f"{row['variable']:<{width}}  {short(value, 60):<28}  {row['source']}")
    return EXIT_OK
