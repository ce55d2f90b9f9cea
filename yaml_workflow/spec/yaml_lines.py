"""PyYAML loading that remembers where every mapping and key came from.

The loader builds plain dicts and lists, except that mappings are :class:`LineDict`
(a dict that knows its own line and the line of each key), so that every later error
can name ``file:line``.  Duplicate keys are refused here, because PyYAML would silently
keep the last one.

Every document is composed into nodes and measured before anything is built from it
(:func:`check_node_budget`): aliases may not expand it past a bound linear in its
length (an alias "bomb" of a few hundred bytes stands for billions of nodes), and an
integer may not have more digits than Python converts.
"""

from __future__ import annotations

import gc
import re
from typing import Any

import yaml

from ..exceptions import SpecError

# How far aliases may expand a document: this many nodes, plus this many per character.
ALIAS_ALLOWANCE = 10_000
ALIAS_FACTOR = 2
# A scalar counts one node per this many characters (a long text repeated by aliases
# is as costly as many small nodes).
CHARS_PER_NODE = 100
# An integer written with more characters than this is refused: Python will not turn a
# number of more than 4,300 digits into text (so the state could not be written), and a
# hexadecimal one of 1,000 characters already has 1,200 digits.
MAX_INT_DIGITS = 1_000
_INT_TAG = "tag:yaml.org,2002:int"

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


# Tags of short plain scalars, as PyYAML's implicit resolvers decide them (they depend on
# the value alone: no path resolvers).
_RESOLVED: dict[str, str] = {}


class _LineLoader(_BaseLoader):  # type: ignore[misc]
    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # PyYAML's resolver (the safe loader has no path resolvers), minus its work for
        # collections and for the common scalar no implicit type can match (a quoted one,
        # or one whose first character starts no int/bool/null/...): a third of the time
        # of loading a large workflow went into it.
        if kind is yaml.ScalarNode:
            if implicit[0] and (not value or value[0] in self.yaml_implicit_resolvers):
                # Keys such as `name` and `task` repeat once per step: resolved once.
                tag = _RESOLVED.get(value)
                if tag is None:
                    tag = super().resolve(kind, value, implicit)
                    if len(value) <= 32 and len(_RESOLVED) < 4096:
                        _RESOLVED[value] = tag
                return tag
            return self.DEFAULT_SCALAR_TAG
        if kind is yaml.SequenceNode:
            return self.DEFAULT_SEQUENCE_TAG
        return self.DEFAULT_MAPPING_TAG


_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"


_STR_TAG = "tag:yaml.org,2002:str"


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    # A plain string is most of a workflow: taken as is, without PyYAML's dispatch.
    if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
        return node.value
    return loader.construct_object(node, deep=True)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    # flatten_mapping puts the entries of `<<:` merges first; a key written in the
    # mapping itself may override them (that is what merges are for), but not repeat.
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    if explicit != len(node.value) or any(k.tag == _VALUE_TAG for k, _ in node.value):
        loader.flatten_mapping(node)  # merges `<<:` in, reads the `=` key as text
    first_explicit = len(node.value) - explicit
    written: set[Any] = set()
    result = LineDict()
    result.line = node.start_mark.line + 1
    for index, (key_node, value_node) in enumerate(node.value):
        key = _construct(loader, key_node)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise SpecError(
                "a mapping key must be a scalar",
                line=key_node.start_mark.line + 1,
            )
        if index >= first_explicit:
            if key in written:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            written.add(key)
        result[key] = _construct(loader, value_node)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# A key is shown in an error only when it looks like a name someone typed as a key:
# the "keys" of a file that is not YAML at all (/etc/shadow) are its content.
_NAME_LIKE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def show_key(key: Any) -> str:
    """``'name'`` for a key that looks like a name, else a description that shows nothing of it."""
    if isinstance(key, str) and _NAME_LIKE.match(key):
        return repr(key)
    return "(a key that is not a name; not shown)"


# What a YAML 1.1 integer is written with: digits (hexadecimal too), `_`, `:`, `0x`/`0b`.
_LONG_NUMBER = re.compile(rf"[0-9a-fA-FxXoO_:]{{{MAX_INT_DIGITS},}}")


def needs_node_check(text: str) -> bool:
    """False when ``text`` can hold neither an alias (no ``&`` anchor) nor a long number."""
    return "&" in text or _LONG_NUMBER.search(text) is not None


def check_node_budget(root: yaml.Node, text_length: int, *, file: str | None = None) -> None:
    """Refuse a document that aliases expand past ``ALIAS_ALLOWANCE + ALIAS_FACTOR x its
    length``, that refers to itself, or that holds an integer too long to convert.

    The walk expands aliases as it goes and stops at the bound, so it costs at most the
    bound: linear in the text whatever the aliases say.
    """
    limit = ALIAS_ALLOWANCE + ALIAS_FACTOR * text_length
    seen = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            seen += 1 + len(node.value) // CHARS_PER_NODE
            if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
                raise SpecError(
                    f"a number with {len(node.value):,} characters is too long", file=file,
                    line=node.start_mark.line + 1,
                    hint=f"a number may have at most {MAX_INT_DIGITS:,} characters; quote it to keep it as text",
                )
        elif isinstance(node, yaml.SequenceNode):
            seen += 1
            stack.extend(node.value)
        else:
            seen += 1
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
        if seen > limit:
            raise SpecError(
                f"YAML aliases expand this document past {limit:,} nodes", file=file,
                hint="write the repeated parts out, or repeat them less: aliases may expand a "
                     f"document to {ALIAS_ALLOWANCE:,} nodes plus {ALIAS_FACTOR} per character "
                     "(an alias that contains itself never ends)",
            )


def _problem_text(err: yaml.MarkedYAMLError) -> str:
    problem = err.problem or err.context or "invalid YAML"
    # A quoted fragment longer than a character or two is the file's content (an alias
    # name, a tag): not echoed, the line number says where to look.
    return re.sub(r"'[^']{3,}'", "'...'", problem)


def _parse(text: str, loader_class: type[yaml.SafeLoader], file: str | None) -> Any:
    # The cyclic garbage collector is off while a document is read: composing and building
    # it makes hundreds of thousands of objects and no garbage, and the collections they
    # trigger made a 20,000-step file take four times longer (they grow with the heap).
    collecting = gc.isenabled()
    gc.disable()
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if needs_node_check(text):
            check_node_budget(node, len(text), file=file)
        return loader.construct_document(node)
    finally:
        loader.dispose()
        if collecting:
            gc.enable()


def _load(text: str, loader_class: type[yaml.SafeLoader], file: str | None) -> Any:
    try:
        return _parse(text, loader_class, file)
    except _DuplicateKey as dup:
        raise SpecError(
            f"key {show_key(dup.key)} appears twice in one mapping",
            file=file,
            line=dup.line,
            hint="each key may appear once; rename or remove one",
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(
            f"invalid YAML (line {line}): {_problem_text(err)}",
            file=file,
            line=line,
            hint="fix the indentation or quoting there",
        ) from None
    except yaml.YAMLError as err:
        raise SpecError(f"invalid YAML: {' '.join(str(err).split())[:200]}", file=file) from None
    except (RecursionError, MemoryError):
        raise SpecError(
            "the YAML nests too deeply to be read", file=file,
            hint="flatten the nested lists/mappings (a few dozen levels at most)",
        ) from None
    except ValueError as err:  # a constructor's own refusal (e.g. an invalid date)
        raise SpecError(f"invalid YAML value: {' '.join(str(err).split())[:200]}", file=file) from None


def load_yaml(text: str, *, file: str | None = None) -> Any:
    """Parse YAML text into LineDicts and lists; raise SpecError with the line on failure."""
    return _load(text, _LineLoader, file)


def load_data(text: str) -> Any:
    """Parse YAML text (a param value) into plain data, with the same bounds as a file."""
    return _load(text, _BaseLoader, None)
