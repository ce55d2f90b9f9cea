"""Run workspaces: ``<base-dir>/<name>_run_<n>/`` with logs/, output/ and temp/."""

from __future__ import annotations

import os
import re
from pathlib import Path

SUBDIRS = ("logs", "output", "temp")
_RUN_DIR = re.compile(r"^(?P<name>.+)_run_(?P<n>\d+)$")


def sanitize_name(name: str) -> str:
    """The workflow name with characters other than letters, digits, - and _ turned into _."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "workflow"


def run_number_of(path: Path) -> int | None:
    """The n of a ``<name>_run_<n>`` folder."""
    match = _RUN_DIR.match(path.name)
    return int(match.group("n")) if match else None


# The last number this process gave out per (base dir, prefix): a process that creates
# many workspaces (a dashboard, an agent, a benchmark) scans the base dir once, not once
# per run (a scan per run makes N runs cost N^2 directory entries).
_LAST: dict[tuple[str, str, int], int] = {}


def create_workspace(base_dir: str | os.PathLike[str], name: str) -> tuple[Path, int]:
    """Make the next free ``<name>_run_<n>`` under base_dir; mkdir decides races."""
    base = Path(base_dir).absolute()
    prefix = f"{sanitize_name(name)}_run_"
    key = (str(base), prefix, os.getpid())
    last = _LAST.get(key)
    if last is None:
        base.mkdir(parents=True, exist_ok=True)
        last = _highest(base, prefix)
    number = last + 1
    while True:
        path = base / f"{prefix}{number}"
        try:
            path.mkdir()
        except FileExistsError:
            # Another process took it: look again rather than count up one by one.
            number = max(number, _highest(base, prefix)) + 1
            continue
        except FileNotFoundError:  # the base dir went away since: make it again
            base.mkdir(parents=True, exist_ok=True)
            number = _highest(base, prefix) + 1
            continue
        _LAST[key] = number
        prepare(path, made=True)
        return path, number


def _highest(base: Path, prefix: str) -> int:
    """The highest n of the ``<prefix><n>`` folders under base (0 for none)."""
    taken = [
        int(entry.name[len(prefix):])
        for entry in os.scandir(base)
        if entry.name.startswith(prefix) and entry.name[len(prefix):].isdigit()
    ]
    return max(taken, default=0)


def prepare(path: Path, *, made: bool = False) -> None:
    """Make sure a (possibly given) workspace has its standard folders (``made``: the
    folder itself was just created)."""
    if not made:
        path.mkdir(parents=True, exist_ok=True)
    for sub in SUBDIRS:
        (path / sub).mkdir(exist_ok=True)


def latest_workspace(base_dir: str | os.PathLike[str], name: str) -> Path | None:
    """The highest-numbered ``<name>_run_<n>`` under base_dir."""
    base = Path(base_dir)
    prefix = f"{sanitize_name(name)}_run_"
    best: tuple[int, Path] | None = None
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return None
    for entry in entries:
        if entry.is_dir() and entry.name.startswith(prefix) and entry.name[len(prefix):].isdigit():
            n = int(entry.name[len(prefix):])
            if best is None or n > best[0]:
                best = (n, Path(entry.path))
    return best[1] if best else None
