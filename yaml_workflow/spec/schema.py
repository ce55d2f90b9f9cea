"""The JSON Schema of the workflow dialect, for editors (``yaml-workflow schema``).

It is generated from the pydantic models, then widened to accept every short form the
loader accepts (steps as a mapping, scalar params, ``retry: 3``, ``on_error: continue``,
a single string where a list is expected...), so that a file the loader takes is never
flagged by an editor.  ``task`` stays a plain string because plugins add task types.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from .models import Workflow

# Draft-07: what the YAML language server (VS Code, Neovim...) understands best.
SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"
TITLE = "yaml-workflow workflow"

_TOP = {
    "name": "Workflow name; defaults to the file name without extension. Used for workspace names.",
    "description": "What the workflow does (shown by `yaml-workflow list`).",
    "version": "Free-form version of the workflow.",
    "params": "Parameters: `name: default` or `name: {type, default, required, ...}`. "
              "Set on the command line as name=value; templates read them as {{ args.name }}.",
    "env": "Extra environment variables (templated with args); also in the `env` namespace.",
    "settings": "Free-form settings, visible to templates as `settings`.",
    "secrets": "Environment variables that must be set before the run; their values are masked.",
    "imports": "Workflow files (relative to this one) whose steps are prepended and params merged.",
    "flows": "Named step sequences; `default` runs without --flow.",
    "steps": "The steps, as a list of mappings with `name`, or a mapping of step name -> step.",
}
_STEP = {
    "name": "Unique step name; templates read its outcome as {{ steps.NAME.result }}.",
    "inputs": "The task's inputs; strings may be Jinja templates.",
    "params": "Same as `inputs` (the public dialect's other spelling).",
    "condition": "Template; the step runs when it renders true, else it is skipped.",
    "depends_on": "Step name(s) this step waits for; with it the steps form a DAG and run in parallel.",
    "retry": "Retry block {max_attempts, delay, backoff, max_delay, jitter, on_error}, or a number of attempts.",
    "on_error": "fail | continue | next | retry, or {action, retry, delay, message, next}.",
    "timeout": "Seconds the whole step may take.",
    "queue": "Celery queue of this step on the fleet.",
}


def _nullable(*options: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [*options, {"type": "null"}]}


def _string_or_list() -> dict[str, Any]:
    return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


def _describe(props: dict[str, Any], texts: dict[str, str]) -> None:
    for key, text in texts.items():
        if key in props:
            props[key]["description"] = text


def _widen_step(step: dict[str, Any], task_names: list[str]) -> None:
    props = step["properties"]
    builtin = ", ".join(task_names)
    props["task"] = {
        "type": "string",
        "title": "Task",
        "description": f"The task type: {builtin}, or one a plugin registers.",
        "examples": task_names,
    }
    props["params"] = copy.deepcopy(props["inputs"])
    props["inputs"] = _nullable(props["inputs"])
    props["params"] = _nullable(props["params"])
    props["depends_on"] = _nullable(*_string_or_list()["anyOf"])
    actions = ["fail", "continue", "next", "retry"]
    props["on_error"] = _nullable({"$ref": "#/$defs/OnError"}, {"type": "string", "enum": actions})
    props["retry"] = _nullable({"$ref": "#/$defs/RetryPolicy"}, {"type": "integer", "minimum": 1})
    _describe(props, _STEP)


def workflow_schema(task_names: Iterable[str] = ()) -> dict[str, Any]:
    """The dialect's JSON Schema; ``task_names`` are offered as completions for ``task``."""
    names = sorted(set(task_names))
    schema = Workflow.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    props = schema["properties"]
    props.pop("source", None)  # set by the loader, never written in a file
    # `name` defaults to the file's stem, so nothing at the top level is required.
    schema.pop("required", None)

    param = defs["Param"]["properties"]
    # Both spellings are accepted (populate_by_name); the schema must not flag either.
    param["allowed_values"] = copy.deepcopy(param["allowedValues"])
    param["min_length"] = copy.deepcopy(param["minLength"])
    scalar = {"type": ["string", "number", "integer", "boolean", "null", "array"]}
    props["params"]["additionalProperties"] = {"anyOf": [{"$ref": "#/$defs/Param"}, scalar]}
    props["params"] = _nullable(props["params"])

    defs["RetryPolicy"]["properties"]["on_error"] = _nullable(*_string_or_list()["anyOf"])
    flows = defs["Flows"]["properties"]
    as_map = flows["definitions"]
    flows["definitions"] = {"anyOf": [as_map, {"type": "array", "items": as_map}]}
    props["secrets"] = _string_or_list()
    props["imports"] = _string_or_list()

    _widen_step(defs["Step"], names)
    in_mapping = copy.deepcopy(defs["Step"])
    in_mapping["required"] = ["task"]  # the mapping key is the name
    in_mapping["description"] = "A step written under its name in a `steps:` mapping."
    defs["StepInMapping"] = in_mapping
    props["steps"] = {
        "anyOf": [
            {"type": "array", "items": {"$ref": "#/$defs/Step"}},
            {"type": "object", "additionalProperties": {"$ref": "#/$defs/StepInMapping"}},
        ]
    }
    _describe(props, _TOP)
    schema["description"] = "A workflow file of yaml-workflow (the orieg/yaml-workflow dialect)."
    schema.pop("title", None)
    return {"$schema": SCHEMA_DIALECT, "title": TITLE, **schema}
