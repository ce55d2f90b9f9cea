"""The ``yaml-workflow`` command: parse arguments, call the library, map errors to exit codes.

Each command lives in its own module exposing ``add_parser(subparsers)``; the module's
handler receives the parsed namespace and returns an exit code.  Every
:class:`WorkflowError` becomes one line on stderr and its exit code; anything else is
an internal error (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ..exceptions import EXIT_FAILED, EXIT_REFUSED, WorkflowError, printable
from ..settings import load_settings

# Command modules, in the order `--help` lists them.
COMMAND_MODULES = (
    "run_cmd",
    "fleet_cmd",
    "schedule_cmd",
    "inspect_cmd",
    "workflow_cmds",
    "workspace_cmd",
    "config_cmd",
    "serve_cmd",
    "mcp_cmd",
)


# The module of each command: a command line builds only its command's parser (and
# imports only that module); --help and unknown commands build them all.
COMMAND_OF = {
    "run": "run_cmd",
    "submit": "fleet_cmd", "worker": "fleet_cmd",
    "schedule": "schedule_cmd", "beat": "schedule_cmd",
    "status": "inspect_cmd", "runs": "inspect_cmd", "logs": "inspect_cmd", "cancel": "inspect_cmd",
    "retry": "inspect_cmd", "skip": "inspect_cmd",
    "validate": "workflow_cmds", "visualize": "workflow_cmds", "list": "workflow_cmds", "init": "workflow_cmds",
    "schema": "workflow_cmds",
    "workspace": "workspace_cmd", "clean": "workspace_cmd",
    "config": "config_cmd",
    "serve": "serve_cmd",
    "serve-mcp": "mcp_cmd",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        message = printable(" ".join(message.splitlines()))  # user text may hold \r, \u2028, \x1b
        self.exit(EXIT_REFUSED, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def _command_module(argv: Sequence[str] | None) -> str | None:
    """The module of the command ``argv`` names, if it names one (global flags first)."""
    words = sys.argv[1:] if argv is None else list(argv)
    for word in words:
        if word in ("--debug", "--version"):
            continue
        return COMMAND_OF.get(word)
    return None


def build_parser(argv: Sequence[str] | None = None, *, whole: bool = True) -> argparse.ArgumentParser:
    """The command line: every command, or (``whole`` False) only the modules of the
    command ``argv`` names when it names one."""
    parser = _Parser(
        prog="yaml-workflow",
        description="Run YAML workflows locally or on a Celery fleet.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    import importlib

    only = None if whole else _command_module(argv)
    for name in COMMAND_MODULES:
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as err:
            if err.name and err.name.endswith(name):
                continue  # a command module not written yet
            raise
        module.add_parser(sub)
    return parser


def _print_error(err: WorkflowError) -> None:
    print(f"error: {printable(err.one_line())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns (and exits with) the exit code."""
    code = run_cli(argv)
    sys.exit(code)


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run one command line and return its exit code (no sys.exit; for tests)."""
    parser = build_parser(argv, whole=False)
    args, extra = parser.parse_known_args(argv)
    debug = args.debug
    if args.version:
        from importlib.metadata import version

        print(version("yaml-workflow"))
        return 0
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_REFUSED
    handler: Any = args.handler
    accepts_extra = getattr(args, "accepts_extra", False)
    if extra and not accepts_extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        # Read afresh for each command: a bad value is one line naming its variable.
        debug = debug or load_settings().debug
        return int(handler(args, extra) if accepts_extra else handler(args))
    except WorkflowError as err:
        _print_error(err)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_FAILED
    except Exception as err:  # noqa: BLE001 - the last line of defence: never a raw traceback
        if debug:
            raise
        text = printable(" ".join(str(err).splitlines()))
        print(
            f"error: internal error: {type(err).__name__}: {text} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
