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


def create_workspace(base_dir: str | os.PathLike[str], name: str) -> tuple[Path, int]:
    """Make the next free ``<name>_run_<n>`` under base_dir; mkdir decides races."""
    base = Path(base_dir).absolute()
    base.mkdir(parents=True, exist_ok=True)
    prefix = f"{sanitize_name(name)}_run_"
    taken = [
        int(entry.name[len(prefix):])
        for entry in os.scandir(base)
        if entry.name.startswith(prefix) and entry.name[len(prefix):].isdigit()
    ]
    number = max(taken, default=0) + 1
    while True:
        path = base / f"{prefix}{number}"
        try:
            path.mkdir()
        except FileExistsError:
            number += 1  # another run took it between our scan and our mkdir
            continue
        prepare(path, made=True)
        return path, number


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
