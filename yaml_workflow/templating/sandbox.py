"""The Jinja2 side of templating: the sandboxed environment and rendering with it.

Imported only when a template is actually rendered or checked, so that a workflow
without templates does not pay for importing Jinja2 (~20 ms of a command's start-up).
"""

from __future__ import annotations

import json
import os
import shlex
import types
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from ..exceptions import TemplateError, TemplateSyntaxProblem
from . import bounded_filters, limits
from .markup import SINGLE_EXPR as _SINGLE_EXPR


def _describe_keys(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = sorted(str(k) for k in obj.keys())
        if not keys:
            return "it is empty"
        shown = ", ".join(keys[:20])
        return f"it holds: {shown}{', ...' if len(keys) > 20 else ''}"
    return f"it is a {type(obj).__name__}"


class _NamedUndefined(StrictUndefined):
    """StrictUndefined whose message says which name is missing and what exists instead."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        name = self._undefined_name
        obj = self._undefined_obj
        if self._undefined_hint:
            message = self._undefined_hint
        elif obj is None or obj is missing:
            message = f"'{name}' is undefined"
        else:
            owner = getattr(obj, "ns_name", None)
            full = f"{owner}.{name}" if owner else f"{type(obj).__name__}.{name}"
            message = f"'{full}' is undefined; {_describe_keys(obj)}"
        raise UndefinedError(message)

    __str__ = __iter__ = __len__ = __bool__ = __eq__ = __ne__ = __hash__ = (
        _fail_with_undefined_error
    )


def _shquote(value: Any) -> str:
    return shlex.quote(str(value))


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, default=str, ensure_ascii=False)


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``~`` joined by :func:`limits.bounded_concat`."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja's name
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Environment(ImmutableSandboxedEnvironment):
    """Our sandbox: bounded operators, calls, loops and output (see :mod:`.limits`)."""

    code_generator_class = _BoundedCodeGenerator
    # Intercepted operators go through call_binop, and Jinja never folds them at compile
    # time: `{{ 10 ** 1000000000 }}` would otherwise be computed by `validate`.
    intercepted_binops = frozenset({"**", "*", "+", "%"})
    bounded_concat = staticmethod(limits.bounded_concat)
    counted = staticmethod(limits.counted)
    # Compiled templates bind `concat = environment.concat` for their output, macros and blocks.
    concat = staticmethod(limits.bounded_output)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        limits.spend()
        args = limits.check_method_call(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            limits.check_brace_format(value.__self__)
        return wrapped

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        # Every {% for %} takes its items through `counted`, which charges the budget.
        for loop in source.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.EnvironmentAttribute("counted"), [loop.iter], [], None, None,
                                   lineno=loop.iter.lineno)
        return super()._generate(source, name, filename, defer_init)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `args.items`, `steps.x.result.keys`: in a workflow a key of that name is meant,
        # not the dict method Jinja would otherwise find first.
        if isinstance(obj, dict):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


def _data_only(value: Any) -> Any:
    """Refuse a template whose value is Python code (a function, method, class or module).

    The sandbox stops attribute tricks, but a bare ``{{ ''.format_map }}`` or
    ``{{ cycler }}`` would otherwise hand a live callable to the task (or its repr to
    the output); templates yield data only.
    """
    if isinstance(value, Undefined):
        return value
    if callable(value) or isinstance(value, types.ModuleType):
        raise SecurityError(
            f"a template may yield data only, not a Python {type(value).__name__}"
        )
    if isinstance(value, (list, tuple, dict, set)):
        limits.check_text(value, "the template yields a value")
    return value


def _make_env() -> _Environment:
    env = _Environment(
        undefined=_NamedUndefined,
        finalize=_data_only,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.filters["shquote"] = _shquote
    env.filters["tojson"] = _tojson
    env.filters["basename"] = lambda p: os.path.basename(str(p))
    env.filters["dirname"] = lambda p: os.path.dirname(str(p))
    env.filters = bounded_filters.bounded_filters(env.filters)
    env.globals["lipsum"] = bounded_filters.bounded_lipsum(env.globals["lipsum"])  # type: ignore[arg-type]
    return env


ENV = _make_env()

# Jinja's parser and Python's compiler recurse on nesting: 80 nested parentheses are
# enough to exhaust them. Such a template is a syntax problem, reported like one.
_TOO_DEEP = "the template nests too deeply (brackets, filters or blocks)"


def _compile(compile_source: Any, source: str) -> Any:
    try:
        return compile_source(source)
    except (RecursionError, MemoryError):
        raise TemplateSyntaxError(_TOO_DEEP, 1) from None


@lru_cache(maxsize=4096)
def _compiled_text(source: str) -> Any:
    return _compile(ENV.from_string, source)


@lru_cache(maxsize=4096)
def _compiled_expr(source: str) -> Any:
    return _compile(lambda text: ENV.compile_expression(text, undefined_to_none=False), source)


@lru_cache(maxsize=8192)
def parse_tree(source: str) -> nodes.Template:
    """Jinja's syntax tree of a template (cached: load and lint both read it)."""
    try:
        return ENV.parse(source)
    except (RecursionError, MemoryError):
        raise TemplateSyntaxError(_TOO_DEEP, 1) from None


def _soft(tree: nodes.Template) -> set[int]:
    """Filters and tests under a condition: Jinja looks those up when they run."""
    soft: set[int] = set()
    for branch in tree.find_all((nodes.If, nodes.CondExpr)):
        if isinstance(branch, nodes.If):
            parts: list[Any] = [*branch.body, *branch.elif_, *branch.else_]
        else:
            assert isinstance(branch, nodes.CondExpr)
            parts = [branch.expr1, branch.expr2]
        for part in parts:
            if part is not None:
                soft.update(id(n) for n in part.find_all((nodes.Filter, nodes.Test)))
                if isinstance(part, (nodes.Filter, nodes.Test)):
                    soft.add(id(part))
    return soft


def check_syntax(source: str) -> str | None:
    """None when ``source`` parses as a template, else the problem in one line.

    Parsing (not compiling) is what finds syntax errors; compiling costs several times
    more, and would make checking a large workflow slow.  The one thing Jinja finds only
    when it compiles, a filter or test nobody defined, is checked here on the tree.
    """
    try:
        tree = parse_tree(source)
    except TemplateSyntaxError as err:
        return f"template syntax error: {err.message}"
    soft: set[int] | None = None
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = ENV.filters if isinstance(node, nodes.Filter) else ENV.tests
        if node.name in known:
            continue
        soft = _soft(tree) if soft is None else soft
        if id(node) not in soft:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            return f"template syntax error: no {kind} named '{node.name}'"
    return None


def _failure(source: str, err: Exception, namespaces: Mapping[str, Any]) -> TemplateError:
    snippet = source if len(source) <= 80 else source[:77] + "..."
    snippet = " ".join(snippet.split())
    if isinstance(err, UndefinedError) and "is unsafe" in (err.message or ""):
        # The sandbox refused an attribute (via |attr or str.format): not a missing name.
        return TemplateError(f"unsafe template refused by the sandbox: {err.message} (in {snippet!r})")
    if isinstance(err, UndefinedError):
        message = err.message or "undefined value"
        if "; it " not in message:
            message += f"; available names: {', '.join(sorted(namespaces))}"
        return TemplateError(f"{message} (in template {snippet!r})")
    if isinstance(err, limits.TemplateLimitError):
        return TemplateError(f"template refused: {err} (in {snippet!r})")
    if isinstance(err, SecurityError):
        return TemplateError(f"unsafe template refused by the sandbox: {err} (in {snippet!r})")
    if isinstance(err, (RecursionError, MemoryError)):
        return TemplateError(f"template failed: it recurses or nests too deeply (in {snippet!r})")
    return TemplateError(f"template failed: {type(err).__name__}: {err} (in {snippet!r})")


def render_text(source: str, namespaces: Mapping[str, Any]) -> str:
    """Render ``source`` to text (the template task and `message` use this)."""
    try:
        template = _compiled_text(source)
        with limits.work_budget():
            return str(template.render(namespaces))
    except TemplateSyntaxError as err:
        raise TemplateSyntaxProblem(f"template syntax error: {err.message}") from None
    except Exception as err:  # noqa: BLE001 - every render failure fails the step, one line
        raise _failure(source, err, namespaces) from None


def render_string(source: str, namespaces: Mapping[str, Any]) -> Any:
    """Render one string: a native value for a single expression, else text."""
    match = _SINGLE_EXPR.match(source)
    if match is None:
        return render_text(source, namespaces)
    try:
        expression = _compiled_expr(match.group("expr"))
        with limits.work_budget():
            value = _data_only(expression(**namespaces))
    except TemplateSyntaxError as err:
        raise TemplateSyntaxProblem(f"template syntax error: {err.message}") from None
    except Exception as err:  # noqa: BLE001
        raise _failure(source, err, namespaces) from None
    if isinstance(value, StrictUndefined):
        raise _failure(source, _as_undefined_error(value), namespaces)
    if isinstance(value, str) and len(match.group("expr")) + 4 != len(source):
        # Text stays text: the whitespace around the expression (a block scalar's
        # final newline) is kept, as rendering never drops a trailing newline.
        return f"{source[: source.index('{{')]}{value}{source[source.rindex('}}') + 2:]}"
    return value


def _as_undefined_error(value: StrictUndefined) -> UndefinedError:
    try:
        str(value)
    except UndefinedError as err:
        return err
    return UndefinedError("undefined value")  # pragma: no cover


