"""PyYAML loading that remembers where every mapping and key came from.

The loader builds plain dicts and lists, except that mappings are :class:`LineDict`
(a dict that knows its own line and the line of each key), so that every later error
can name ``file:line``.  Duplicate keys are refused here, because PyYAML would silently
keep the last one.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..exceptions import SpecError

# The C parser is several times faster; construction stays in Python either way.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LineDict(dict):  # type: ignore[type-arg]
    """A mapping from YAML that knows its own line and the line of each of its keys."""

    __slots__ = ("line", "key_lines")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line: int | None = None
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        """Line of ``key`` in the file, else the mapping's own line."""
        return self.key_lines.get(key, self.line)


# LineDicts reach the output (`run --dry-run --format yaml` shows a step's inputs as
# written): yaml.safe_dump must write them as the plain mappings they are.
yaml.SafeDumper.add_representer(LineDict, yaml.SafeDumper.represent_dict)
if hasattr(yaml, "CSafeDumper"):
    yaml.CSafeDumper.add_representer(LineDict, yaml.CSafeDumper.represent_dict)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key)
        self.key = key
        self.line = line


class _LineLoader(_BaseLoader):  # type: ignore[misc]
    pass


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    # flatten_mapping puts the entries of `<<:` merges first; a key written in the
    # mapping itself may override them (that is what merges are for), but not repeat.
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    first_explicit = len(node.value) - explicit
    written: set[Any] = set()
    result = LineDict()
    result.line = node.start_mark.line + 1
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise SpecError(
                "a mapping key must be a scalar",
                line=key_node.start_mark.line + 1,
            )
        if index >= first_explicit:
            if key in written:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            written.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, *, file: str | None = None) -> Any:
    """Parse YAML text into LineDicts and lists; raise SpecError with the line on failure."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as dup:
        raise SpecError(
            f"key {dup.key!r} appears twice in one mapping",
            file=file,
            line=dup.line,
            hint="each key may appear once; rename or remove one",
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        problem = err.problem or err.context or "invalid YAML"
        raise SpecError(
            f"invalid YAML (line {line}): {problem}",
            file=file,
            line=line,
            hint="fix the indentation or quoting there",
        ) from None
    except yaml.YAMLError as err:
        raise SpecError(f"invalid YAML: {err}", file=file) from None
    except RecursionError:
        raise SpecError(
            "the YAML nests too deeply to be read", file=file,
            hint="flatten the nested lists/mappings (a few dozen levels at most)",
        ) from None
