"""The resources: each workflow file under the directory, and each run's state document.

``yaml-workflow://workflows/{path}`` is a workflow file's text; ``yaml-workflow://runs/{run_id}``
is a run's state document (JSON, the structure of `.workflow_metadata.json`), masked and
bounded like every tool result.  Both are listed afresh on each request.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp_types import Resource

from .. import client
from ..exceptions import RunNotFound, WorkflowError
from .redaction import RESULT_LIMIT, STRING_LIMIT, Redactor
from .workflow_dir import OutsideDirectory, WorkflowDir

WORKFLOW_URI = "yaml-workflow://workflows/{+path}"
RUN_URI = "yaml-workflow://runs/{run_id}"
RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # an id, never a path
RUNS_LISTED = 100  # newest runs listed as resources (any run id can still be read)
FILE_LIMIT = 4 * STRING_LIMIT  # characters of a workflow file shown at most


class Resources:
    """Lists and reads the resources of one server."""

    def __init__(self, directory: WorkflowDir, base_dir: Path | None) -> None:
        self.directory = directory
        self.base_dir = base_dir

    def listing(self) -> list[Resource]:
        """Every served workflow file, then the newest runs."""
        found = [
            Resource(uri=WORKFLOW_URI.replace("{+path}", row.file), name=row.file,
                     title=row.name if row.valid else f"{row.file} (does not load)",
                     description=row.description or row.error, mime_type="application/yaml")
            for row in self.directory.files()
        ]
        try:
            runs = client.runs(base_dir=self.base_dir, limit=RUNS_LISTED).runs
        except WorkflowError:
            runs = []  # an unreachable store hides the runs, not the workflows
        found += [
            Resource(uri=RUN_URI.replace("{run_id}", row.run_id), name=f"run {row.run_id}",
                     title=f"{row.workflow} run {row.run_id}: {row.status}",
                     description=f"started {row.start_time}, last updated {row.last_updated}",
                     mime_type="application/json")
            for row in runs
        ]
        return found

    def workflow_text(self, path: str) -> str:
        """A served workflow file's text (secrets it declares masked, long files cut)."""
        try:
            real = self.directory.resolve(path)
        except OutsideDirectory as err:
            raise ResourceNotFoundError(err.one_line()) from None
        try:
            secrets = client.load(real).secrets
        except WorkflowError:
            secrets = []  # a file that does not load is still shown, to be fixed
        where = "read the file itself for the rest"
        return Redactor.for_secrets(secrets, where=where).text(
            real.read_text(encoding="utf-8", errors="replace"), FILE_LIMIT)

    def run_document(self, run_id: str) -> str:
        """A run's state document as JSON, masked and bounded (step by step for the outputs)."""
        if not RUN_ID.match(run_id):
            raise ResourceNotFoundError(f"'{run_id[:100]}' is not a run id")
        try:
            located = client.locate(run_id, base_dir=self.base_dir)
        except RunNotFound as err:
            raise ResourceNotFoundError(err.one_line()) from None
        except WorkflowError as err:
            raise ResourceError(err.one_line()) from None
        redactor = Redactor.for_secrets(client.secret_names(located.doc))
        doc = redactor.masker.value(located.doc)
        state = doc.get("execution_state")
        if isinstance(state, dict) and isinstance(state.get("step_outputs"), dict):
            doc["execution_state"] = {**state, "step_outputs": redactor.mapping(state["step_outputs"])}
        shown = redactor.mapping(doc, limit=2 * RESULT_LIMIT, value_limit=RESULT_LIMIT)
        return json.dumps(shown, indent=1, ensure_ascii=False, default=str)
