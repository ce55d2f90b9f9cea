"""File tasks.  Every path goes through ``ctx.resolve_path``: nothing escapes the workspace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ...exceptions import TaskError
from ..context import TaskContext
from ..registry import builtin_task


# `file` is the documented name; `path` and `file_path` are spelled by older workflows.
def _file_field() -> Any:
    return Field(validation_alias=AliasChoices("file", "path", "file_path"))


class _Inputs(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")


class WriteFileInputs(_Inputs):
    """Inputs of ``write_file`` / ``append_file``."""

    file: str = _file_field()
    content: Any = ""
    encoding: str = "utf-8"


class ReadFileInputs(_Inputs):
    """Inputs of ``read_file``."""

    file: str = _file_field()
    encoding: str = "utf-8"


class WriteDataInputs(_Inputs):
    """Inputs of ``write_json`` / ``write_yaml``."""

    file: str = _file_field()
    data: Any = None
    indent: int = 2
    encoding: str = "utf-8"


class ReadDataInputs(_Inputs):
    """Inputs of ``read_json`` / ``read_yaml``."""

    file: str = _file_field()
    encoding: str = "utf-8"


class CopyInputs(_Inputs):
    """Inputs of ``copy_file`` / ``move_file``."""

    source: str
    destination: str


class DeleteInputs(_Inputs):
    """Inputs of ``delete_file``."""

    file: str = _file_field()
    recursive: bool = False


def _as_text(content: Any) -> str:
    # A single-expression template yields native values; structures are written as JSON
    # rather than as Python reprs.
    if isinstance(content, str):
        return content
    if isinstance(content, (dict, list)):
        return json.dumps(content, ensure_ascii=False)
    return "" if content is None else str(content)


def _target(ctx: TaskContext, path: str) -> Path:
    """A path to write: inside the workspace, with its parent directories created."""
    resolved = ctx.resolve_path(path)
    if resolved == ctx.workspace.resolve():
        raise TaskError(f"step '{ctx.step}': '{path}' is the workspace itself, not a file")
    resolved.parent.mkdir(parents=True, exist_ok=True)
    return resolved


@builtin_task("write_file", inputs=WriteFileInputs)
def write_file(inputs: WriteFileInputs, ctx: TaskContext) -> dict[str, Any]:
    """Write ``content`` to a file; result ``{path, content}``."""
    path = _target(ctx, inputs.file)
    text = _as_text(inputs.content)
    path.write_bytes(text.encode(inputs.encoding))  # bytes: no newline translation
    return {"path": str(path), "content": text}


@builtin_task("append_file", inputs=WriteFileInputs)
def append_file(inputs: WriteFileInputs, ctx: TaskContext) -> dict[str, Any]:
    """Append ``content`` to a file (created if missing); result ``{path, content}``."""
    path = _target(ctx, inputs.file)
    text = _as_text(inputs.content)
    with path.open("ab") as handle:
        handle.write(text.encode(inputs.encoding))
    return {"path": str(path), "content": text}


@builtin_task("read_file", inputs=ReadFileInputs)
def read_file(inputs: ReadFileInputs, ctx: TaskContext) -> dict[str, Any]:
    """Read a text file; result ``{path, content}``."""
    path = ctx.resolve_path(inputs.file)
    return {"path": str(path), "content": path.read_bytes().decode(inputs.encoding)}


@builtin_task("write_json", inputs=WriteDataInputs)
def write_json(inputs: WriteDataInputs, ctx: TaskContext) -> dict[str, Any]:
    """Write ``data`` as JSON; result ``{path}``."""
    path = _target(ctx, inputs.file)
    text = json.dumps(inputs.data, indent=inputs.indent, ensure_ascii=False) + "\n"
    path.write_bytes(text.encode(inputs.encoding))
    return {"path": str(path)}


@builtin_task("write_yaml", inputs=WriteDataInputs)
def write_yaml(inputs: WriteDataInputs, ctx: TaskContext) -> dict[str, Any]:
    """Write ``data`` as YAML, keys in the given order; result ``{path}``."""
    path = _target(ctx, inputs.file)
    text = yaml.safe_dump(inputs.data, sort_keys=False, allow_unicode=True, indent=inputs.indent)
    path.write_bytes(text.encode(inputs.encoding))
    return {"path": str(path)}


@builtin_task("read_json", inputs=ReadDataInputs)
def read_json(inputs: ReadDataInputs, ctx: TaskContext) -> dict[str, Any]:
    """Parse a JSON file; result ``{data}``."""
    path = ctx.resolve_path(inputs.file)
    try:
        return {"data": json.loads(path.read_bytes().decode(inputs.encoding))}
    except json.JSONDecodeError as err:
        raise TaskError(f"step '{ctx.step}': {inputs.file} is not valid JSON: {err}") from None


@builtin_task("read_yaml", inputs=ReadDataInputs)
def read_yaml(inputs: ReadDataInputs, ctx: TaskContext) -> dict[str, Any]:
    """Parse a YAML file (safe loader); result ``{data}``."""
    path = ctx.resolve_path(inputs.file)
    try:
        return {"data": yaml.safe_load(path.read_bytes().decode(inputs.encoding))}
    except yaml.YAMLError as err:
        problem = " ".join(str(err).split())
        raise TaskError(f"step '{ctx.step}': {inputs.file} is not valid YAML: {problem}") from None


def _source_and_destination(ctx: TaskContext, inputs: CopyInputs) -> tuple[Path, Path]:
    source = ctx.resolve_path(inputs.source)
    if source == ctx.workspace.resolve():
        raise TaskError(f"step '{ctx.step}': cannot copy or move the workspace itself")
    if not source.exists():
        raise FileNotFoundError(f"step '{ctx.step}': source '{inputs.source}' does not exist")
    destination = _target(ctx, inputs.destination)
    if destination.is_dir():
        # Into an existing directory, as cp/mv do; checked again in case that name is a
        # link pointing out of the workspace.
        destination = ctx.resolve_path(destination / source.name)
    return source, destination


@builtin_task("copy_file", inputs=CopyInputs)
def copy_file(inputs: CopyInputs, ctx: TaskContext) -> dict[str, Any]:
    """Copy a file (or a directory tree); result ``{source, destination}``."""
    source, destination = _source_and_destination(ctx, inputs)
    if source.is_dir():
        # symlinks=True copies links as links rather than pulling in what they point at.
        shutil.copytree(source, destination, symlinks=True)
    else:
        shutil.copy2(source, destination)
    return {"source": str(source), "destination": str(destination)}


@builtin_task("move_file", inputs=CopyInputs)
def move_file(inputs: CopyInputs, ctx: TaskContext) -> dict[str, Any]:
    """Move (rename) a file or directory; result ``{source, destination}``."""
    source, destination = _source_and_destination(ctx, inputs)
    shutil.move(str(source), str(destination))
    return {"source": str(source), "destination": str(destination)}


@builtin_task("delete_file", inputs=DeleteInputs)
def delete_file(inputs: DeleteInputs, ctx: TaskContext) -> dict[str, Any]:
    """Delete a file (a missing one is not an error); result ``{path}``."""
    path = ctx.resolve_path(inputs.file)
    if path == ctx.workspace.resolve():
        raise TaskError(f"step '{ctx.step}': refusing to delete the workspace itself")
    # A link inside the workspace is removed itself, not the file it points at.
    entry = ctx.resolve_path(Path(inputs.file).parent) / Path(inputs.file).name
    if Path(inputs.file).name not in ("", ".", "..") and entry.is_symlink():
        entry.unlink()
    elif path.is_dir():
        if not inputs.recursive:
            raise TaskError(
                f"step '{ctx.step}': '{inputs.file}' is a directory",
                hint="set recursive: true to delete it and everything in it",
            )
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    return {"path": str(path)}
