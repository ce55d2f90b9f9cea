"""Ticks of schedules: cron in a time zone (daylight saving on a fake clock), every, catch-up."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from yaml_workflow.exceptions import SpecError
from yaml_workflow.spec.cron import CronError, parse_cron
from yaml_workflow.spec.loader import load_workflow_file
from yaml_workflow.spec.models import Schedule
from yaml_workflow.spec.schedule import MAX_CATCHUP, Ticks, plan_ticks

UTC = timezone.utc


def walk(schedule: Schedule, start: datetime, count: int) -> list[str]:
    """The next ``count`` ticks after ``start``, as the fake clock walks from tick to tick."""
    ticks, at, out = Ticks(schedule), start.timestamp(), []
    for _ in range(count):
        tick = ticks.after(at)
        out.append(tick.text)
        at = tick.at
    return out


def test_a_cron_tick_is_the_cron_time_in_its_zone() -> None:
    kolkata = Schedule(cron="0 9 * * 1-5", timezone="Asia/Kolkata")  # +05:30, no DST
    assert walk(kolkata, datetime(2026, 11, 27, 0, 0, tzinfo=UTC), 3) == [
        "2026-11-27T09:00:00+05:30", "2026-11-30T09:00:00+05:30", "2026-12-01T09:00:00+05:30"]
    # 03:30 UTC is 09:00 in Kolkata: a tick at exactly `after` is not "after" it
    assert walk(kolkata, datetime(2026, 11, 27, 3, 30, tzinfo=UTC), 1) == ["2026-11-30T09:00:00+05:30"]


def test_daylight_saving_forward_a_fixed_time_fires_when_the_gap_ends() -> None:
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day
    daily = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    assert walk(daily, datetime(2026, 3, 27, 12, tzinfo=UTC), 3) == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
    # an hourly (wildcard hour) expression has no 02:00 that day, and no double 03:00
    hourly = Schedule(cron="0 * * * *", timezone="Europe/Berlin")
    assert walk(hourly, datetime(2026, 3, 28, 23, 30, tzinfo=UTC), 3) == [
        "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]
    # two fixed times that both land on the gap's end are one tick
    both = Schedule(cron="0 2,3 * * *", timezone="Europe/Berlin")
    assert walk(both, datetime(2026, 3, 28, 12, tzinfo=UTC), 2) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]


def test_daylight_saving_back_fixed_fires_once_wildcard_twice() -> None:
    # New York, 2026-11-01: 01:00-02:00 happens twice (EDT, then EST)
    daily = Schedule(cron="30 1 * * *", timezone="America/New_York")
    assert walk(daily, datetime(2026, 10, 31, 12, tzinfo=UTC), 3) == [
        "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]
    half_hourly = Schedule(cron="*/30 1 * * *", timezone="America/New_York")
    assert walk(half_hourly, datetime(2026, 11, 1, 4, tzinfo=UTC), 4) == [
        "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00"]


def test_every_is_aligned_to_the_epoch_in_utc() -> None:
    five = Schedule(every="5m")
    assert walk(five, datetime(2026, 11, 29, 10, 3, 17, tzinfo=UTC), 2) == [
        "2026-11-29T10:05:00+00:00", "2026-11-29T10:10:00+00:00"]
    ticks = Ticks(five)
    assert ticks.at_or_before(datetime(2026, 11, 29, 10, 5, tzinfo=UTC).timestamp()).text == "2026-11-29T10:05:00+00:00"
    assert Schedule(every=90).every == 90 and Schedule(every="1h").every == 3600


def test_the_last_tick_at_or_before_a_time() -> None:
    nightly = Ticks(Schedule(cron="0 3 * * *", timezone="Europe/Berlin"))
    found = nightly.at_or_before(datetime(2026, 11, 29, 10, tzinfo=UTC).timestamp())
    assert found is not None and found.text == "2026-11-29T03:00:00+01:00"
    yearly = Ticks(Schedule(cron="0 0 29 2 *"))
    leap = yearly.at_or_before(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    assert leap is not None and leap.text == "2024-02-29T00:00:00+00:00"


@pytest.mark.parametrize(("policy", "fired", "missed"), [
    ("all", [101, 102, 103, 104, 105, 106, 107, 108, 109, 110], None),
    ("latest", [107, 108, 109, 110], (101, 106, 6)),
    ("none", [108, 109, 110], (101, 107, 7)),
])
def test_catch_up_after_an_outage(policy: str, fired: list[int], missed: tuple[int, int, int] | None) -> None:
    # given a cursor at 100, now 110, and this beat holding the lock since 107.5
    plan = plan_ticks(Ticks(Schedule(every=1, catchup=policy)), 100.0, 110.0, 107.5)
    assert [t.at for t in plan.fire] == fired
    assert plan.cursor is not None and plan.cursor.at == 110
    if missed is None:
        assert plan.missed_count == 0
    else:
        assert (plan.missed[0].at, plan.missed[1].at, plan.missed_count) == missed


def test_catch_up_all_is_bounded() -> None:
    plan = plan_ticks(Ticks(Schedule(every=1, catchup="all")), 0.0, 5000.0, 0.0)
    assert len(plan.fire) == MAX_CATCHUP and plan.fire[-1].at == 5000
    assert plan.missed_count == 5000 - MAX_CATCHUP and plan.missed[0].at == 1
    assert plan_ticks(Ticks(Schedule(every=10)), 100.0, 105.0, 0.0).idle


@pytest.mark.parametrize(("text", "message"), [
    ("* * * *", "has 4 fields"),
    ("61 * * * *", "minute field: '61' is outside 0-59"),
    ("* * * foo *", "month field"),
    ("*/0 * * * *", "step '0'"),
    ("0 0 30 2 *", "never fires"),
    ("5-1 * * * *", "runs backwards"),
    ("@often", "unknown macro"),
])
def test_bad_cron_expressions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(text)


def test_names_and_macros_parse() -> None:
    assert parse_cron("0 9 * jan-mar mon,fri").weekdays == frozenset({1, 5})
    assert parse_cron("@daily").hours == frozenset({0})
    assert parse_cron("0 0 * * 7").weekdays == frozenset({0})


BAD = {
    "cron": ("schedule:\n  cron: '99 * * * *'\n", 5, "minute field"),
    "short": ("schedule: 'not a cron'\n", 4, "has 3 fields"),
    "zone": ("schedule:\n  cron: '0 3 * * *'\n  timezone: Mars/Olympus\n", 6, "unknown time zone 'Mars/Olympus'"),
    "zero": ("schedule:\n  every: 0\n", 5, "never repeats"),
    "catchup": ("schedule:\n  every: 5m\n  catchup: sometimes\n", 6, "catchup"),
    "both": ("schedule:\n  every: 5m\n  cron: '* * * * *'\n", 4, "not both"),
    "unknown": ("schedule:\n  every: 5m\n  evrey: 1\n", 6, "evrey"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_schedule_values_name_the_file_and_line(case: str, tmp_path: Path) -> None:
    body, line, message = BAD[case]
    path = tmp_path / "wf.yaml"
    path.write_text("name: nightly\nsteps:\n  - {name: a, task: noop}\n" + body)
    with pytest.raises(SpecError) as caught:
        load_workflow_file(path)
    assert caught.value.line == line, caught.value.one_line()
    assert message in caught.value.one_line()


def test_bad_schedule_values_exit_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("name: nightly\nsteps:\n  - {name: a, task: noop}\nschedule:\n  every: 0\n")
    for argv in (["schedule", "add", str(path)], ["validate", str(path)], ["run", str(path)]):
        proc = subprocess.run([sys.executable, "-m", "yaml_workflow", *argv], capture_output=True,
                              text=True, timeout=60, cwd=str(tmp_path))
        assert proc.returncode == 2, (argv, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "wf.yaml:5" in lines[0] and "never repeats" in lines[0], (argv, proc.stderr)


def test_a_good_schedule_loads_and_run_ignores_it(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("name: nightly\nsteps:\n  - {name: a, task: echo, inputs: {message: '{{ workflow.trigger.type }}'}}\n"
                    "schedule: {cron: '0 3 * * *', timezone: Europe/Berlin, params: {}, catchup: all,"
                    " max_active_runs: 2, enabled: false}\n")
    workflow = load_workflow_file(path)
    assert workflow.schedule is not None and workflow.schedule.timing == "cron 0 3 * * * Europe/Berlin"
    assert ZoneInfo(workflow.schedule.timezone)
    proc = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", str(path), "--format", "json"],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0 and '"a": "manual"' in proc.stdout, proc.stderr
