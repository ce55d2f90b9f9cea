"""The trust boundary: an MCP client names workflow files under ``--dir`` and nothing else.

Running a workflow runs its code, so the directory is the set of programs the server
will run.  A name is refused when it is absolute, holds a ``..`` part, or resolves
(through a symlink, of the file or of a folder on the way) to a place outside it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from ..client import WorkflowFile, list_workflows
from ..exceptions import UsageError

WORKFLOW_SUFFIXES = (".yaml", ".yml")


class OutsideDirectory(UsageError):
    """A workflow name that is not a file under the served directory."""


class WorkflowDir:
    """The served directory of workflow files."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, name: str) -> Path:
        """The real path of the workflow file ``name`` (relative to the directory), or
        :class:`OutsideDirectory` saying why it is refused."""
        shown = name if len(name) <= 200 else name[:200] + "..."
        hint = "name a .yaml file relative to the workflows directory; list_workflows shows them"
        if not name or "\x00" in name:
            raise OutsideDirectory("the workflow name is empty or holds a NUL character", hint=hint)
        if (PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute()
                or PureWindowsPath(name).drive or name.startswith("~")):
            raise OutsideDirectory(f"workflow '{shown}' is an absolute path; only files under the "
                                   f"workflows directory are served", hint=hint)
        if ".." in PurePosixPath(name.replace("\\", "/")).parts:
            raise OutsideDirectory(f"workflow '{shown}' climbs out with '..'; only files under the "
                                   f"workflows directory are served", hint=hint)
        real = (self.root / name).resolve()
        if not real.is_relative_to(self.root):
            raise OutsideDirectory(f"workflow '{shown}' leads outside the workflows directory "
                                   f"(a symlink?); only files under it are served", hint=hint)
        if not real.is_file():
            raise OutsideDirectory(f"no workflow file '{shown}' in the workflows directory", hint=hint)
        if real.suffix not in WORKFLOW_SUFFIXES:
            raise OutsideDirectory(f"'{shown}' is not a workflow file (.yaml or .yml)", hint=hint)
        return real

    def serves(self, name: str) -> bool:
        """True when ``name`` would be accepted by :meth:`resolve`."""
        try:
            self.resolve(name)
        except OutsideDirectory:
            return False
        return True

    def files(self) -> list[WorkflowFile]:
        """The workflow files under the directory that it serves (no link out of it)."""
        return [row for row in list_workflows(self.root) if self.serves(row.file)]

    def relative(self, text: str) -> str:
        """``text`` with the directory's absolute path taken off the file names in it."""
        return text.replace(f"{self.root}/", "")
