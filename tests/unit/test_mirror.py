"""The JSON mirror: journal + atomic compaction, merged reads, bad files refused untouched."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yaml_workflow.cli.main import run_cli
from yaml_workflow.exceptions import StateFileError
from yaml_workflow.state import mirror as mirror_mod
from yaml_workflow.state.document import now_iso, replay, status_event, step_event
from yaml_workflow.state.mirror import JOURNAL_DIR, STATE_FILE, Mirror, read_state


def header(workspace: Path, run_id: str = "run-m") -> dict[str, Any]:
    """A run transition for a run in ``workspace``."""
    return {"t": "run", "at": time.time(), "workflow_id": run_id, "name": "mirror",
            "start_time": now_iso(), "status": "running", "workspace": str(workspace),
            "params": {}, "workflow": {"name": "mirror", "steps": []}}


def on_disk(workspace: Path) -> dict[str, Any]:
    """The state file exactly as a plain reader parses it (no journal merge)."""
    return json.loads((workspace / STATE_FILE).read_text())  # type: ignore[no-any-return]


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` until it holds or the deadline passes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture()
def slow_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """No compaction unless forced: what is on disk is only the snapshot."""
    monkeypatch.setattr(mirror_mod, "COMPACT_INTERVAL", 3600.0)


def test_the_file_is_rewritten_within_a_second_while_events_arrive(tmp_path: Path) -> None:
    # given a run whose steps keep recording
    mirror = Mirror(tmp_path)
    mirror.write_header(header(tmp_path))
    mirror.append(step_event("first", "completed", result=1))
    first_at = time.monotonic()

    def has_first() -> bool:
        return "first" in on_disk(tmp_path)["execution_state"]["step_outputs"]

    # when events keep arriving, then the file shows the first one within about a second
    # (the deadline is three times that: a loaded machine must not fail it)
    seen = None
    deadline = first_at + 3.0
    n = 0
    while time.monotonic() < deadline:
        mirror.append(step_event(f"s{n}", "completed", result=n))
        n += 1
        if has_first():
            seen = time.monotonic() - first_at
            break
        time.sleep(0.02)
    assert seen is not None, "file not rewritten within 3 s"
    mirror.close()


def test_a_quiet_run_is_compacted_by_the_flusher(tmp_path: Path) -> None:
    # given one event and then silence (no later append to trigger compaction)
    mirror = Mirror(tmp_path)
    mirror.write_header(header(tmp_path))
    mirror.append(step_event("only", "completed", result="x"))
    # then the background flusher writes it within about a second
    assert wait_for(lambda: "only" in on_disk(tmp_path)["execution_state"]["step_outputs"], 2.0)
    mirror.close()


def test_reads_merge_the_snapshot_with_every_journal(tmp_path: Path, slow_compaction: None) -> None:
    # given a header in the snapshot and events of two writers only in their journals
    head = header(tmp_path)
    one, two = Mirror(tmp_path), Mirror(tmp_path)
    one.write_header(head)
    events = [step_event("a", "running"), step_event("a", "completed", result={"v": 1}),
              {"t": "var", "key": "k", "value": [1, 2], "at": time.time()}]
    one.append(events[0])
    two.append(events[1])
    one.append(events[2])
    # then the file alone lacks them, a reader sees them all, in order
    assert on_disk(tmp_path)["execution_state"]["step_outputs"] == {}
    assert read_state(tmp_path) == replay([head, *events])
    assert len(list((tmp_path / JOURNAL_DIR).glob("*.jsonl"))) == 2
    # and once compacted the file itself holds them
    one.close()
    two.close()
    snapshot = on_disk(tmp_path)
    snapshot.pop("mirror")
    assert snapshot == replay([head, *events])
    assert read_state(tmp_path) == snapshot


def test_a_torn_last_line_is_ignored(tmp_path: Path, slow_compaction: None) -> None:
    # given a writer killed in the middle of its last line
    head = header(tmp_path)
    mirror = Mirror(tmp_path)
    mirror.write_header(head)
    done = step_event("a", "completed", result=1)
    mirror.append(done)
    journal = tmp_path / JOURNAL_DIR / mirror.journal_name
    with open(journal, "ab") as fh:
        fh.write(b'{"t":"step","step":"b","sta')
    # then readers see everything complete and nothing of the torn line
    assert read_state(tmp_path) == replay([head, done])
    mirror.compact(force=True)
    assert read_state(tmp_path) == replay([head, done])


def test_events_without_time_keep_their_place_in_the_journal(tmp_path: Path, slow_compaction: None) -> None:
    # given one writer's journal where the clock stepped back and one event has no time
    head = header(tmp_path)
    mirror = Mirror(tmp_path)
    mirror.write_header(head)
    now = time.time()
    events = [{**step_event("a", "failed", error="x"), "at": now + 2},
              {"t": "reset", "steps": ["a"]},
              {**step_event("a", "completed", result=2), "at": now + 1}]
    for event in events:
        mirror.append(event)
    # then readers apply them in the order they were written
    assert read_state(tmp_path) == replay([head, *events])
    assert read_state(tmp_path)["execution_state"]["step_outputs"]["a"] == {"status": "completed", "result": 2}


BAD_FILES = {
    "corrupt": b"\x00\x01 this is not json",
    "truncated": json.dumps({"workflow_id": "x", "execution_state": {"step_outputs": {}}}).encode()[:30],
    "unknown version": json.dumps({"schema_version": 99, "workflow_id": "x",
                                   "execution_state": {"step_outputs": {}}}).encode(),
    "not a run": json.dumps({"hello": "world"}).encode(),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_state_file_is_refused_by_name_and_left_as_it_is(
    tmp_path: Path, kind: str, slow_compaction: None
) -> None:
    # given a workspace whose state file is damaged, and a journal line waiting
    path = tmp_path / STATE_FILE
    path.write_bytes(BAD_FILES[kind])
    writer = Mirror(tmp_path)
    writer.append(status_event("failed"))
    # when it is read or compacted, then StateFileError names the file
    with pytest.raises(StateFileError) as caught:
        read_state(tmp_path)
    assert str(path) in caught.value.one_line()
    if kind == "unknown version":
        assert "schema version 99" in caught.value.one_line()
    with pytest.raises(StateFileError):
        writer.compact(force=True)
    # and nothing was overwritten
    assert path.read_bytes() == BAD_FILES[kind]


def test_the_cli_refuses_a_bad_state_file_with_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / STATE_FILE
    path.write_bytes(BAD_FILES["truncated"])
    code = run_cli(["run", "--resume", "--workspace", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and str(path) in err
    assert path.read_bytes() == BAD_FILES["truncated"]


def test_keeping_the_file_current_costs_compactions_per_second_not_per_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a count of every rewrite of the state file
    rewrites = []
    real = mirror_mod.write_atomically

    def counting(path: Path, text: str) -> None:
        rewrites.append(len(text))
        real(path, text)

    monkeypatch.setattr(mirror_mod, "write_atomically", counting)
    head = header(tmp_path)
    mirror = Mirror(tmp_path)
    mirror.write_header(head)
    # when 10,000 transitions are recorded
    started = time.monotonic()
    for n in range(10_000):
        mirror.append(step_event(f"s{n}", "completed", result=n))
    mirror.close()
    elapsed = time.monotonic() - started
    # then the file was rewritten about once a second, not once per transition
    assert len(rewrites) <= 3 + 2 * elapsed, f"{len(rewrites)} rewrites in {elapsed:.1f}s"
    doc = read_state(tmp_path)
    assert len(doc["execution_state"]["step_outputs"]) == 10_000
    assert on_disk(tmp_path)["execution_state"]["step_outputs"]["s9999"]["result"] == 9999
