"""The command line builds only the parser of the command it runs: the table that says
which module registers which command must match the modules."""

from __future__ import annotations

import argparse
import importlib

from yaml_workflow.cli.main import COMMAND_MODULES, COMMAND_OF, build_parser


def _registered(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(f"yaml_workflow.cli.{module}").add_parser(sub)
    return set(sub.choices)


def test_every_command_is_in_the_table_with_the_module_that_registers_it() -> None:
    registered = {command: module for module in COMMAND_MODULES for command in _registered(module)}
    assert registered == COMMAND_OF


def test_a_command_line_builds_the_same_parser_for_its_command_as_the_whole_one() -> None:
    for command in COMMAND_OF:
        whole = build_parser()
        only = build_parser([command], whole=False)
        sub_whole = next(a for a in whole._actions if isinstance(a, argparse._SubParsersAction))
        sub_only = next(a for a in only._actions if isinstance(a, argparse._SubParsersAction))
        assert command in sub_only.choices
        assert sub_only.choices[command].format_help() == sub_whole.choices[command].format_help()


def test_global_flags_before_the_command_still_find_it() -> None:
    parser = build_parser(["--debug", "validate"], whole=False)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {c for c, m in COMMAND_OF.items() if m == "workflow_cmds"}


def test_the_whole_command_line_is_built_without_pydantic_yaml_celery_or_redis() -> None:
    # `yaml-workflow --help` and every command's parser stay cheap to build
    import subprocess
    import sys

    probe = ("import sys; from yaml_workflow.cli.main import build_parser; build_parser();"
             "print(sorted(m for m in ('pydantic', 'yaml', 'celery', 'redis', 'jinja2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
