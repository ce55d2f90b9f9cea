"""Running the CLI in this process with its output captured (for the property tests)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from yaml_workflow.cli.main import run_cli


@dataclass
class Outcome:
    """What one command line did: its exit code and both streams."""

    argv: list[str]
    code: int
    out: str
    err: str


def cli(*argv: str) -> Outcome:
    """``yaml-workflow ARGV`` in this process, stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_cli(list(argv))
        except SystemExit as exc:  # argparse exits by itself on usage errors and -h
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return Outcome(list(argv), code, out.getvalue(), err.getvalue())
