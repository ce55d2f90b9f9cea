"""Steps as the local executor runs them: retry, on_error, timeouts, conditions, secrets, DAGs.

Every test goes through ``executors.local_run.start_run`` with a tmp base dir and the
default state (the workspace's JSON file), and reads the state back from the workspace.
"""

from __future__ import annotations

import io
import json
import os
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.rendezvous import signal
from yaml_workflow.cli.output import StepPrinter, print_result
from yaml_workflow.engine.load import load_workflow
from yaml_workflow.engine.request import RunRequest, RunResult
from yaml_workflow.engine.retry import RetryPlan
from yaml_workflow.exceptions import EXIT_REFUSED, SecretError
from yaml_workflow.executors.local_run import start_run
from yaml_workflow.spec.models import OnError, RetryPolicy, Step
from yaml_workflow.state.mirror import STATE_FILE, read_state


class Events:
    """An observer that keeps every transition the executor reports."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, event: dict[str, Any]) -> None:
        with self._lock:
            self.items.append(dict(event))

    def of(self, step: str, status: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.items if e.get("t") == "step" and e.get("step") == step
                and (status is None or e.get("status") == status)]


def load(tmp_path: Path, text: str, name: str = "wf.yaml") -> Any:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return load_workflow(path)


def run(tmp_path: Path, text: str, **request: Any) -> tuple[RunResult, dict[str, Any]]:
    """Start a run of the workflow ``text``; return its result and its state document."""
    request.setdefault("base_dir", tmp_path / "runs")
    result = start_run(RunRequest(workflow=load(tmp_path, text), **request))
    return result, read_state(result.workspace)


def records(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return doc["execution_state"]["step_outputs"]  # type: ignore[no-any-return]


def key() -> str:
    return uuid.uuid4().hex


# --- retry ------------------------------------------------------------------------------


def test_retry_block_retries_a_named_error_until_it_succeeds(tmp_path: Path) -> None:
    # given a shell step that fails twice, then succeeds, retried on ShellCommandError
    result, doc = run(tmp_path, """
        steps:
          - name: flaky
            task: shell
            inputs:
              command: 'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ "$n" -ge 3 ]'
            retry:
              max_attempts: 5
              delay: 0
              on_error: [ShellCommandError]
    """)
    # then it ran three times and the run completed
    assert result.status == "completed"
    assert (Path(result.workspace) / "count").read_text().strip() == "3"
    assert records(doc)["flaky"]["status"] == "completed"
    assert records(doc)["flaky"]["attempt"] == 3


def test_retry_block_gives_up_after_max_attempts(tmp_path: Path) -> None:
    result, doc = run(tmp_path, """
        steps:
          - name: always
            task: shell
            inputs: {command: 'echo x >> tries; exit 4'}
            retry: {max_attempts: 3, delay: 0, on_error: ShellCommandError}
          - name: never
            task: echo
            inputs: {message: unreachable}
    """)
    assert result.status == "failed"
    assert result.failed_step == "always"
    assert (Path(result.workspace) / "tries").read_text().count("x") == 3
    assert records(doc)["always"]["attempt"] == 3
    assert records(doc)["always"]["result"]["return_code"] == 4
    assert "never" not in records(doc)


def test_retry_block_does_not_retry_an_error_it_does_not_name(tmp_path: Path) -> None:
    # given python code that raises ValueError, with retries only for ConnectionError
    result, doc = run(tmp_path, """
        steps:
          - name: picky
            task: python_code
            inputs:
              code: |
                with open(workspace + "/tries", "a") as fh:
                    fh.write("x")
                raise ValueError("bad value")
            retry: {max_attempts: 4, delay: 0, on_error: [ConnectionError]}
    """)
    # then it ran once and failed with the ValueError
    assert result.status == "failed"
    assert (Path(result.workspace) / "tries").read_text() == "x"
    record = records(doc)["picky"]
    assert record["attempt"] == 1
    assert record["error_type"] == "ValueError"
    assert "bad value" in record["error"]


def test_retry_block_matches_base_classes_of_the_error(tmp_path: Path) -> None:
    # ConnectionRefusedError is a ConnectionError: it is retried
    result, doc = run(tmp_path, """
        steps:
          - name: net
            task: python_code
            inputs:
              code: |
                with open(workspace + "/tries", "a") as fh:
                    fh.write("x")
                raise ConnectionRefusedError("no route")
            retry: {max_attempts: 3, delay: 0, on_error: [ConnectionError]}
    """)
    assert result.status == "failed"
    assert (Path(result.workspace) / "tries").read_text() == "xxx"
    assert records(doc)["net"]["error_type"] == "ConnectionRefusedError"


def test_backoff_waits_follow_delay_backoff_and_max_delay() -> None:
    # given delay 1, backoff 2, max_delay 3
    plan = RetryPlan(max_attempts=5, delay=1, backoff=2, max_delay=3)
    # then the waits before attempts 2..5 are 1, 2, 3, 3
    assert [plan.delay_before(n) for n in (2, 3, 4, 5)] == [1, 2, 3, 3]


def test_backoff_over_many_attempts_stays_at_max_delay() -> None:
    plan = RetryPlan(max_attempts=5000, delay=1.0, backoff=2.0, max_delay=60.0)
    assert plan.delay_before(1500) == 60.0
    assert plan.delay_before(4999) == 60.0


def test_retry_plan_from_a_step() -> None:
    step = Step(name="s", task="echo", retry=RetryPolicy(max_attempts=4, delay=0.5, backoff=3,
                                                           on_error=["TimeoutError"]))
    plan = RetryPlan.for_step(step)
    assert plan.max_attempts == 4
    assert [plan.delay_before(n) for n in (2, 3, 4)] == [0.5, 1.5, 4.5]
    assert plan.matches(TimeoutError()) and not plan.matches(ValueError())
    assert plan.should_retry(TimeoutError(), 3) and not plan.should_retry(TimeoutError(), 4)
    # on_error.retry N: N more attempts with a fixed delay, any error
    other = RetryPlan.for_step(Step(name="t", task="echo", on_error=OnError(action="fail", retry=2, delay=0.25)))
    assert other.max_attempts == 3
    assert [other.delay_before(n) for n in (2, 3)] == [0.25, 0.25]
    assert other.matches(ValueError())
    # no retry asked: one attempt
    assert RetryPlan.for_step(Step(name="u", task="echo")).max_attempts == 1


def test_jitter_only_adds_to_the_wait() -> None:
    plan = RetryPlan(max_attempts=3, delay=1, backoff=2, max_delay=3, jitter=0.5)
    waits = [plan.delay_before(3) for _ in range(50)]
    assert all(2 <= w <= 2.5 for w in waits)


def test_the_executor_waits_what_the_plan_says(tmp_path: Path) -> None:
    # given a step retried with delay 0.01, backoff 2, max_delay 0.03
    events = Events()
    result, _ = run(tmp_path, """
        steps:
          - name: flaky
            task: fail
            inputs: {message: again}
            retry: {max_attempts: 5, delay: 0.01, backoff: 2, max_delay: 0.03}
    """, observer=events)
    # then each retrying transition announces the planned wait
    assert result.status == "failed"
    waits = [e["next_delay"] for e in events.of("flaky", "retrying")]
    assert waits == pytest.approx([0.01, 0.02, 0.03, 0.03])


# --- on_error ---------------------------------------------------------------------------


def test_on_error_continue_records_the_failure_and_goes_on(tmp_path: Path) -> None:
    result, doc = run(tmp_path, """
        steps:
          - name: shaky
            task: fail
            inputs: {message: shaky broke}
            on_error: continue
          - name: after
            task: echo
            inputs: {message: "after {{ steps.shaky.status }}"}
    """)
    assert result.status == "completed"
    assert records(doc)["shaky"]["status"] == "failed"
    assert records(doc)["shaky"]["error"] == "shaky broke"
    assert result.outputs["after"] == "after failed"


def test_on_error_next_jumps_and_records_the_steps_in_between(tmp_path: Path) -> None:
    # given a failing step whose on_error jumps to `recover`
    result, doc = run(tmp_path, """
        steps:
          - name: work
            task: fail
            inputs: {message: "disk full"}
            on_error:
              action: next
              next: recover
              message: "work failed ({{ error.type }}): {{ error.message }} in {{ error.step }}"
          - name: publish
            task: echo
            inputs: {message: publish}
          - name: notify
            task: echo
            inputs: {message: notify}
          - name: recover
            task: echo
            inputs:
              message: "{{ steps.work.status }}|{{ steps.work.error }}|{{ steps.work.error_message }}"
    """)
    steps = records(doc)
    # then the run completes through `recover`, the steps in between are skipped with a reason
    assert result.status == "completed"
    for jumped in ("publish", "notify"):
        assert steps[jumped]["status"] == "skipped"
        assert "next from work" in steps[jumped]["reason"]
    # and the failure, with its templated message, is visible to the later step
    message = "work failed (FailTaskError): disk full in work"
    assert steps["work"]["status"] == "failed"
    assert steps["work"]["error_message"] == message
    assert result.outputs["recover"] == f"failed|disk full|{message}"


def test_on_error_fail_stops_the_run(tmp_path: Path) -> None:
    result, doc = run(tmp_path, """
        steps:
          - name: first
            task: echo
            inputs: {message: one}
          - name: breaks
            task: fail
            inputs: {message: stop here}
            on_error: {action: fail, message: "breaks said: {{ error.message }}"}
          - name: later
            task: echo
            inputs: {message: never}
    """)
    assert result.status == "failed"
    assert result.failed_step == "breaks"
    assert "stop here" in (result.error or "")
    assert records(doc)["breaks"]["error_message"] == "breaks said: stop here"
    assert "later" not in records(doc)
    failed = doc["execution_state"]["failed_step"]
    assert failed["step_name"] == "breaks"
    assert doc["status"] == "failed"


def test_on_error_retry_then_continue(tmp_path: Path) -> None:
    result, doc = run(tmp_path, """
        steps:
          - name: shaky
            task: shell
            inputs: {command: 'echo x >> tries; exit 1'}
            on_error: {action: continue, retry: 2, delay: 0}
          - name: after
            task: echo
            inputs: {message: "{{ steps.shaky.attempt }}"}
    """)
    assert result.status == "completed"
    assert (Path(result.workspace) / "tries").read_text().count("x") == 3
    assert result.outputs["after"] == 3


# --- timeouts ---------------------------------------------------------------------------


@pytest.mark.serial
def test_in_process_step_past_its_timeout_fails(tmp_path: Path) -> None:
    # given python code that does not return (until the test lets it), with a 0.5 s timeout
    stop = key()
    started = time.monotonic()
    try:
        result, doc = run(tmp_path, """
            params:
              stop: {type: string}
            steps:
              - name: spin
                task: python_code
                timeout: 0.5
                inputs:
                  code: |
                    import time
                    from tests.support.rendezvous import wait_for
                    while not wait_for(args["stop"], 0):
                        time.sleep(0.01)
              - name: after
                task: echo
                inputs: {message: never}
        """, params={"stop": stop})
        elapsed = time.monotonic() - started
    finally:
        signal(stop)  # let the abandoned thread end
    # then the step fails on time (its thread abandoned) and the run stops
    assert result.status == "failed"
    assert result.failed_step == "spin"
    assert elapsed < 1.5 + 2.0  # ~3x the timeout, plus run start-up
    record = records(doc)["spin"]
    assert record["error_type"] == "StepTimeoutError"
    assert "timeout" in record["error"]


@pytest.mark.serial
def test_shell_step_past_its_timeout_is_killed(tmp_path: Path) -> None:
    # given a shell step that records its pid and sleeps far past its timeout
    started = time.monotonic()
    result, doc = run(tmp_path, """
        steps:
          - name: sleepy
            task: shell
            timeout: 0.5
            inputs:
              command: 'echo $$ > pid; exec sleep 30'
    """)
    assert result.status == "failed"
    assert time.monotonic() - started < 10
    assert records(doc)["sleepy"]["error_type"] == "StepTimeoutError"
    # then the process is gone soon after (not left sleeping for 30 s)
    pid = int((Path(result.workspace) / "pid").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"process {pid} still alive after the step timed out")


# --- conditions -------------------------------------------------------------------------


def test_false_condition_skips_with_a_reason(tmp_path: Path) -> None:
    result, doc = run(tmp_path, """
        params:
          deploy: {type: boolean, default: false}
        steps:
          - name: gated
            task: echo
            condition: "{{ args.deploy }}"
            inputs: {message: deployed}
          - name: literal
            task: echo
            condition: "no"
            inputs: {message: never}
          - name: open
            task: echo
            condition: "{{ not args.deploy }}"
            inputs: {message: "{{ steps.gated.status }}"}
    """)
    assert result.status == "completed"
    for name in ("gated", "literal"):
        assert records(doc)[name]["status"] == "skipped"
        assert records(doc)[name]["reason"] == "condition was false"
    assert result.outputs["open"] == "skipped"
    assert "gated" not in result.outputs


def test_condition_template_error_fails_the_step_and_retry_applies(tmp_path: Path) -> None:
    result, doc = run(tmp_path, """
        steps:
          - name: gated
            task: echo
            condition: "{{ args.nope }}"
            inputs: {message: x}
            on_error: {action: retry, retry: 2, delay: 0}
    """)
    assert result.status == "failed"
    record = records(doc)["gated"]
    assert record["status"] == "failed"
    assert record["attempt"] == 3
    assert "args.nope" in record["error"]
    assert record["error_type"] == "TemplateError"


def test_undefined_input_fails_at_run_time_and_on_error_applies(tmp_path: Path) -> None:
    result, doc = run(tmp_path, """
        steps:
          - name: a
            task: echo
            inputs: {message: "{{ args.missing }}"}
            on_error: continue
          - name: b
            task: echo
            inputs: {message: "{{ steps.a.status }}"}
    """)
    assert result.status == "completed"
    assert "'args.missing' is undefined" in records(doc)["a"]["error"]
    assert result.outputs["b"] == "failed"


# --- secrets ----------------------------------------------------------------------------

SECRET = "s3cr3t-Value-4711"


def test_missing_secret_refuses_before_any_step(tmp_path: Path) -> None:
    workflow = load(tmp_path, """
        secrets: [YWF_TEST_API_TOKEN]
        steps:
          - name: a
            task: shell
            inputs: {command: 'touch ran'}
    """)
    environ = {k: v for k, v in os.environ.items() if k != "YWF_TEST_API_TOKEN"}
    with pytest.raises(SecretError) as caught:
        start_run(RunRequest(workflow=workflow, base_dir=tmp_path / "runs", environ=environ))
    assert caught.value.exit_code == EXIT_REFUSED
    assert "YWF_TEST_API_TOKEN" in caught.value.one_line()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_empty_secret_counts_as_missing(tmp_path: Path) -> None:
    workflow = load(tmp_path, """
        secrets: [YWF_TEST_API_TOKEN]
        steps:
          - name: a
            task: echo
    """)
    with pytest.raises(SecretError):
        start_run(RunRequest(workflow=workflow, base_dir=tmp_path / "runs",
                             environ={**os.environ, "YWF_TEST_API_TOKEN": ""}))


def test_secret_values_are_masked_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given a workflow that prints, returns and fails with its secret
    printed = io.StringIO()
    environ = {**os.environ, "YWF_TEST_API_TOKEN": SECRET}
    result, doc = run(tmp_path, """
        secrets: [YWF_TEST_API_TOKEN]
        steps:
          - name: show
            task: shell
            inputs: {command: 'echo "token=$YWF_TEST_API_TOKEN"'}
          - name: rendered
            task: echo
            inputs: {message: "t={{ env.YWF_TEST_API_TOKEN }}"}
          - name: code
            task: python_code
            inputs: {code: "result = {'k': env['YWF_TEST_API_TOKEN'], 'n': [env['YWF_TEST_API_TOKEN']]}"}
          - name: leaky_failure
            task: shell
            inputs: {command: 'echo "bad $YWF_TEST_API_TOKEN" >&2; exit 2'}
            on_error: {action: continue, message: "failed: {{ error.message }}"}
    """, environ=environ, observer=StepPrinter(stream=printed))
    assert result.status == "completed"
    # then the outputs hold *** instead of the value
    assert result.outputs["show"]["stdout"] == "token=***\n"
    assert result.outputs["rendered"] == "t=***"
    assert result.outputs["code"] == {"k": "***", "n": ["***"]}
    assert SECRET not in json.dumps(result.outputs)
    steps = records(doc)
    assert SECRET not in steps["leaky_failure"]["error_message"]
    assert "***" in steps["leaky_failure"]["error_message"]
    assert steps["leaky_failure"]["result"]["stderr"] == "bad ***\n"
    # and no file of the workspace (state file, journal, logs) holds the value
    leaked = [p for p in Path(result.workspace).rglob("*")
              if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []
    assert (Path(result.workspace) / STATE_FILE).is_file()
    # and neither do the CLI's step lines nor its result documents
    for fmt in ("text", "json", "yaml"):
        print_result(result, fmt)
    out = capsys.readouterr()
    assert SECRET not in printed.getvalue() + out.out + out.err
    assert "***" in printed.getvalue()


def test_the_error_of_a_failed_run_is_masked(tmp_path: Path) -> None:
    # given a run that fails with the secret in its error
    environ = {**os.environ, "YWF_TEST_API_TOKEN": SECRET}
    result, doc = run(tmp_path, """
        secrets: [YWF_TEST_API_TOKEN]
        steps:
          - name: leak
            task: fail
            inputs: {message: "bad token {{ env.YWF_TEST_API_TOKEN }}"}
    """, environ=environ)
    # then neither the returned error nor the recorded failure holds the value
    assert result.status == "failed"
    assert result.error is not None and "bad token ***" in result.error
    assert SECRET not in json.dumps(doc)
    assert doc["execution_state"]["failed_step"]["error"] == result.error


def test_block_scalar_with_one_expression_keeps_its_newline(tmp_path: Path) -> None:
    result, _ = run(tmp_path, """
        steps:
          - name: gen
            task: echo
            inputs: {message: "a line"}
          - name: save
            task: write_file
            inputs:
              file: out.txt
              content: |
                {{ steps.gen.result }}
    """)
    assert result.status == "completed", result.error
    assert (Path(result.workspace) / "out.txt").read_bytes() == b"a line\n"


# --- results that are not data -----------------------------------------------------------


def test_non_json_result_fails_the_step_naming_it_and_the_type(tmp_path: Path) -> None:
    result, doc = run(tmp_path, """
        steps:
          - name: make_set
            task: python_code
            inputs: {code: "result = {1, 2}"}
    """)
    assert result.status == "failed"
    assert result.failed_step == "make_set"
    error = records(doc)["make_set"]["error"]
    assert "make_set" in error
    assert "set" in error
    assert records(doc)["make_set"]["error_type"] == "OutputNotSerializable"


# --- DAG --------------------------------------------------------------------------------


@pytest.mark.serial
def test_independent_dag_steps_run_in_parallel(tmp_path: Path) -> None:
    # given two steps that each wait (up to 10 s) until the other is running too
    result, doc = run(tmp_path, """
        params:
          key: {type: string}
        steps:
          - name: start
            task: echo
            inputs: {message: go}
          - name: left
            task: python_code
            depends_on: start
            inputs:
              code: |
                from tests.support.rendezvous import meet
                result = meet(args["key"], 2, timeout=10)
          - name: right
            task: python_code
            depends_on: start
            inputs:
              code: |
                from tests.support.rendezvous import meet
                result = meet(args["key"], 2, timeout=10)
          - name: join
            task: echo
            depends_on: [left, right]
            inputs: {message: "{{ steps.left.result }}+{{ steps.right.result }}"}
    """, params={"key": key()})
    # then both got through the barrier: they ran at the same time
    assert result.status == "completed", result.error
    assert result.outputs["join"] == "met+met"
    assert records(doc)["join"]["status"] == "completed"


@pytest.mark.serial
def test_failure_in_a_dag_stops_scheduling_new_steps(tmp_path: Path) -> None:
    # given a failing branch and a slower sibling whose dependent could start after the failure
    result, doc = run(tmp_path, """
        params:
          key: {type: string}
        steps:
          - name: start
            task: echo
            inputs: {message: go}
          - name: bad
            task: python_code
            depends_on: start
            inputs:
              code: |
                from tests.support.rendezvous import signal
                signal(args["key"])
                raise RuntimeError("branch broke")
          - name: slow
            task: python_code
            depends_on: start
            inputs:
              code: |
                import time
                from tests.support.rendezvous import wait_for
                result = wait_for(args["key"], 10)
                time.sleep(0.2)
          - name: after_slow
            task: shell
            depends_on: slow
            inputs: {command: 'touch after_slow_ran'}
    """, params={"key": key()})
    # then the running sibling finishes, but nothing new starts
    assert result.status == "failed"
    assert result.failed_step == "bad"
    steps = records(doc)
    assert steps["slow"]["status"] == "completed"
    assert steps["slow"]["result"] is True
    assert "after_slow" not in steps or steps["after_slow"]["status"] != "completed"
    assert not (Path(result.workspace) / "after_slow_ran").exists()


def test_dag_step_without_depends_on_follows_the_previous_step(tmp_path: Path) -> None:
    result, _ = run(tmp_path, """
        steps:
          - name: a
            task: echo
            inputs: {message: A}
          - name: b
            task: echo
            inputs: {message: "{{ steps.a.result }}B"}
          - name: c
            task: echo
            depends_on: b
            inputs: {message: "{{ steps.b.result }}C"}
    """)
    assert result.outputs["c"] == "ABC"


# --- start-from, skip-steps ---------------------------------------------------------------

THREE_STEPS = """
    steps:
      - name: one
        task: echo
        inputs: {message: "1"}
      - name: two
        task: echo
        inputs: {message: "2"}
      - name: three
        task: echo
        inputs: {message: "3"}
"""


def test_start_from_records_earlier_steps_as_skipped(tmp_path: Path) -> None:
    result, doc = run(tmp_path, THREE_STEPS, start_from="two")
    steps = records(doc)
    assert result.status == "completed"
    assert steps["one"]["status"] == "skipped"
    assert steps["one"]["reason"] == "before --start-from two"
    assert steps["two"]["status"] == steps["three"]["status"] == "completed"


def test_skip_steps_records_them_as_skipped(tmp_path: Path) -> None:
    result, doc = run(tmp_path, THREE_STEPS, skip_steps=["one", "three"])
    steps = records(doc)
    assert result.status == "completed"
    assert steps["one"]["status"] == steps["three"]["status"] == "skipped"
    assert steps["three"]["reason"] == "skipped by --skip-steps"
    assert list(result.outputs) == ["two"]


# --- identity -----------------------------------------------------------------------------


def test_concurrent_runs_in_one_base_dir_get_their_own_workspaces(tmp_path: Path) -> None:
    workflow = load(tmp_path, THREE_STEPS)
    gate = threading.Barrier(4)
    results: list[RunResult] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            gate.wait(10)
            results.append(start_run(RunRequest(workflow=workflow, base_dir=tmp_path / "runs")))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(results) == 4
    assert len({r.workspace for r in results}) == 4
    assert len({r.run_id for r in results}) == 4
    assert all(r.status == "completed" for r in results)
    for r in results:
        assert read_state(r.workspace)["workflow_id"] == r.run_id


def test_workflow_run_id_is_the_state_files_workflow_id(tmp_path: Path) -> None:
    result, _ = run(tmp_path, """
        steps:
          - name: who
            task: echo
            inputs: {message: "{{ workflow.run_id }}"}
    """)
    on_disk = json.loads((Path(result.workspace) / STATE_FILE).read_text())
    assert result.outputs["who"] == on_disk["workflow_id"] == result.run_id
    assert Path(result.workspace).name == "wf_run_1"


# --- the step's timeout covers rendering its inputs ----------------------------------------


def test_a_template_that_loops_is_stopped_by_the_step_timeout(tmp_path: Path) -> None:
    # given a step whose input takes minutes to render, and a timeout of 1 s (run in a
    # process of its own: the abandoned rendering thread dies with it).  The loop stays
    # within the sandbox's bounds (templating/limits: a loop past its work budget is
    # refused by the sandbox itself): each turn is slow, not each turn a lot of turns.
    import subprocess
    import sys

    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent("""
        steps:
          - name: spin
            task: echo
            timeout: 1
            inputs:
              message: "{% for i in range(100000) %}{{ ('ab' * 2000000) | replace('a', 'c') | length }}{% endfor %}done"
          - name: after
            task: noop
    """))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", str(wf), "--workspace",
                           str(tmp_path / "ws"), "--format", "json"], capture_output=True, text=True, timeout=60)
    # then the step fails with its timeout, long before the loop could end
    assert time.monotonic() - started < 15
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["failed_step"] == "spin", proc.stderr
    doc = read_state(tmp_path / "ws")
    assert records(doc)["spin"]["error_type"] == "StepTimeoutError"
    assert "after" not in records(doc)
