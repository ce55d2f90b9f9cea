"""`serve-mcp` flags: refused in one line, exit 2, before anything is served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import cli


def test_without_the_mcp_extra_one_line_names_it_and_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # what a missing package looks like to `import`

    res = cli("serve-mcp", "--dir", str(tmp_path))

    assert res.code == 2 and res.out == ""
    assert res.err.count("\n") == 1, res.err
    assert "'mcp' extra" in res.err and "pip install 'yaml-workflow[mcp]'" in res.err


def test_a_missing_workflows_directory_is_refused_before_serving(tmp_path: Path) -> None:
    res = cli("serve-mcp", "--dir", str(tmp_path / "nowhere"))

    assert res.code == 2 and res.err.count("\n") == 1
    assert "no such directory" in res.err


def test_serve_mcp_is_listed_and_refuses_unknown_flags_as_users_type_them(tmp_path: Path) -> None:
    helped = subprocess.run([sys.executable, "-m", "yaml_workflow", "--help"], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert "serve-mcp" in helped.stdout
    refused = subprocess.run([sys.executable, "-m", "yaml_workflow", "serve-mcp", "--port", "1"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                             cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--port" in refused.stderr
