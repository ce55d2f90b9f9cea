"""How commands print: step lines on stderr, results on stdout in text, JSON or YAML."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..exceptions import UsageError, printable

if TYPE_CHECKING:
    from ..engine.request import RunResult

FORMATS = ("text", "json", "yaml")


def dump(document: Any, fmt: str) -> str:
    """A document as JSON or YAML text."""
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"


def short(value: Any, limit: int = 120) -> str:
    """One line of at most ``limit`` characters, control characters shown as escapes."""
    text = printable(" ".join(str(value).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_step(event: dict[str, Any]) -> str | None:
    """One line for a step transition worth showing, else None."""
    status, name = event.get("status"), event.get("step")
    if status == "completed":
        counts = _failed_items(event)
        note = f" ({counts[0]} of {counts[1]} items failed)" if counts else ""
        return f"  ok    {name}{note} ({event.get('duration', 0):.2f}s)"
    if status == "failed":
        return f"  FAIL  {name}: {short(event.get('error_message') or event.get('error'), 300)}"
    if status == "skipped":
        return f"  skip  {name}: {short(event.get('reason'), 300)}"
    if status == "retrying":
        return (f"  retry {name} attempt {event.get('attempt')}/{event.get('max_attempts')} "
                f"failed, next in {event.get('next_delay', 0):.1f}s: {short(event.get('error'))}")
    return None


def _failed_items(event: dict[str, Any]) -> tuple[int, int] | None:
    """A batch's failed and total items: from its result (local) or the fleet's event fields."""
    if isinstance(event.get("items_failed"), int) and isinstance(event.get("items_total"), int):
        return event["items_failed"], event["items_total"]
    from ..tasks.batching import failed_item_counts  # pydantic: not for every command's start-up

    return failed_item_counts(event.get("result"))


def format_progress(event: dict[str, Any]) -> str:
    """One line for a recorded progress report (at most one per progress_interval)."""
    info = event.get("progress") or {}
    done, total = info.get("done"), info.get("total")
    line = f"  ..    {event.get('step')} {done}/{total}" if total is not None else f"  ..    {event.get('step')} {done}"
    if info.get("percent") is not None:
        line += f" ({info['percent']}%)"
    for key in ("failed", "retries"):
        if info.get(key):
            line += f" {key} {info[key]}"
    if info.get("message"):
        line += f"  {short(info['message'], 80)}"
    return line


class StepPrinter:
    """An executor observer that prints one line per step transition."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.stalled = ""

    def __call__(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "notice":  # lost or regained Redis: said even to --quiet
            print(f"warning: {event['text']}", file=self.stream, flush=True)
            return
        if self.quiet:
            return
        if kind == "progress" and "t" in event:  # recorded reports only, not every item
            print(format_progress(event), file=self.stream, flush=True)
            return
        if kind == "stalled":
            if event.get("text") and event["text"] != self.stalled:
                print(f"  stall {event['text']}", file=self.stream, flush=True)
            self.stalled = event.get("text") or ""
            return
        if kind != "step":
            return
        line = format_step(event)
        if line:
            print(line, file=self.stream, flush=True)


def check_output_target(output: str | None) -> None:
    """Refuse an --output that cannot take the result, before anything runs: a folder, a
    device or pipe (/dev/full), a missing folder, a file we may not write."""
    if not output:
        return
    path = Path(output)
    try:
        if path.is_dir():
            raise UsageError(f"--output {output} is a directory", hint="give a file name")
        if path.exists() and not path.is_file():
            raise UsageError(f"--output {output} is not a regular file",
                             hint="write the result to a file (stdout: --format json)")
        folder = path.absolute().parent
        if not folder.is_dir():
            raise UsageError(f"--output {output}: its folder does not exist",
                             hint="create the folder, or write the result elsewhere")
        if not os.access(path if path.exists() else folder, os.W_OK):
            raise UsageError(f"--output {output}: not writable", hint="write the result elsewhere")
    except OSError as err:  # a name too long, a loop of links
        raise UsageError(f"--output {short(output, 80)}: {err.strerror or err}") from None


def print_result(result: RunResult, fmt: str, output: str | None = None) -> None:
    """The run's outcome: a summary line, or the JSON/YAML document on stdout only."""
    if fmt in ("json", "yaml"):
        text = dump(result.to_json(), fmt)
        sys.stdout.write(text)
    else:
        if result.ok:
            text = f"Workflow '{result.workflow}' completed (run {result.run_id}, workspace {result.workspace})\n"
            sys.stdout.write(text)
        else:
            where = f" at step '{result.failed_step}'" if result.failed_step else ""
            why = f": {result.error}" if result.error else ""  # a cancel has no error to name
            text = (f"Workflow '{result.workflow}' {result.status}{where}{why} "
                    f"(run {result.run_id}, workspace {result.workspace})\n")
            sys.stderr.write(f"error: {printable(text.rstrip())}\n")
    if output:
        try:
            Path(output).write_text(text if fmt != "text" else dump(result.to_json(), "json"), encoding="utf-8")
        except OSError as err:  # the disk filled up while the run ran
            raise UsageError(f"cannot write the result to {output}: {err.strerror or err}",
                             hint=f"the run itself ended {result.status} (run {result.run_id})") from None
