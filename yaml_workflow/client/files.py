"""The files of a run's workspace: listed and read, never a path outside it.

A path is taken relative to the workspace and refused (:class:`UsageError`) when it is
absolute, climbs with ``..``, passes through a symbolic link anywhere along the way
(a link could point anywhere, and may change between a check and a read), or is not a
regular file.  The listing does not follow links either; it leaves out the engine's own
``.ywf`` folder (journals, markers).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from ..exceptions import UsageError
from .inspect import locate
from .models import FileContent, WorkspaceFile

FILE_LIMIT = 1_000_000  # characters of a file returned at most
LIST_LIMIT = 2_000  # files listed at most
HIDDEN = frozenset((".ywf",))


def _workspace(run: str, base_dir: str | Path | None) -> tuple[str, Path]:
    located = locate(run, base_dir=base_dir)
    if located.workspace is None:
        raise UsageError(f"run {located.run_id} has no workspace on this machine")
    return located.run_id, located.workspace


def files(run: str, *, base_dir: str | Path | None = None, limit: int = LIST_LIMIT) -> list[WorkspaceFile]:
    """Regular files of the run's workspace, sorted (links are neither listed nor followed)."""
    _, root = _workspace(run, base_dir)
    found: list[WorkspaceFile] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not (folder == str(root) and d in HIDDEN))
        for name in sorted(names):
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                found.append(WorkspaceFile(path=path.relative_to(root).as_posix(), size=info.st_size))
                if len(found) >= limit:
                    return found
    return found


def safe_relative(path: str) -> PurePosixPath:
    """``path`` as a relative path inside a folder; UsageError for absolute or ``..`` paths."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if not path or "\x00" in path or pure.is_absolute() or ".." in pure.parts:
        raise UsageError(f"'{path[:200]}' is not a path inside the run's workspace",
                         hint="give a path relative to the workspace, without '..'")
    return pure


def workspace_path(root: Path, path: str) -> Path:
    """The file ``path`` names in ``root``: no absolute path, no ``..``, no link on the way."""
    current = root
    for part in safe_relative(path).parts:
        current = current / part
        try:
            info = current.lstat()
        except OSError:
            raise UsageError(f"no file '{path[:200]}' in the run's workspace") from None
        if stat.S_ISLNK(info.st_mode):
            raise UsageError(f"'{path[:200]}' passes through a symbolic link; only the workspace's own "
                             "files are shown")
    if not stat.S_ISREG(current.lstat().st_mode):
        raise UsageError(f"'{path[:200]}' is not a file of the run's workspace")
    if not current.resolve().is_relative_to(root.resolve()):
        raise UsageError(f"'{path[:200]}' is outside the run's workspace")
    return current


def read_file(run: str, path: str, *, base_dir: str | Path | None = None,
              limit: int = FILE_LIMIT) -> FileContent:
    """The text of a file of the run's workspace (UsageError for a path that leaves it)."""
    _, root = _workspace(run, base_dir)
    target = workspace_path(root, path)
    # O_NOFOLLOW: a link swapped in after the check is refused by the kernel, not followed.
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, encoding="utf-8", errors="replace") as fh:
        text = fh.read(limit + 1)
        size = os.fstat(fh.fileno()).st_size
    return FileContent(path=safe_relative(path).as_posix(), text=text[:limit], size=size,
                       truncated=len(text) > limit)
