"""`make soak`: every fleet fault 20 times with the shipped defaults, and the recovery
times measured (median and maximum), written to bench/results/soak.json.

``YWF_SOAK_REPEATS`` changes the count.  Each round is a fresh fleet; every round checks
what the fault's single run in `make test` checks (tests/support/fleet_faults.py).
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from tests.support import fleet_faults as faults

pytestmark = [pytest.mark.soak, pytest.mark.celery, pytest.mark.redis, pytest.mark.serial]

REPEATS = int(os.environ.get("YWF_SOAK_REPEATS", "20"))
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "soak.json"
FAULTS = {
    "whole worker SIGKILLed mid-step": faults.whole_worker_sigkill,
    "worker with reserved and countdown messages SIGKILLed": faults.reserved_and_countdown,
    "worker SIGKILLed mid-batch": faults.mid_batch_sigkill,
    "500-step backlog (run time, no re-dispatch)": faults.backlog,
    "step 5x the visibility timeout (run time)": faults.long_step,
    "no survivor of the first attempt": faults.no_survivor,
    "Redis restarted 5 times with AOF": faults.aof_restarts,
    "Redis restarted empty, then submit --resume": faults.empty_restart,
    "submit --wait across a 10 s outage": faults.wait_across_outage,
    "Redis away for 3 claim TTLs": faults.long_outage,
    "a run's first message lost by the broker": faults.lost_root_message,
    "a message lost in the middle of a run": faults.lost_message_midway,
}
_TIMES: dict[str, list[float]] = {}


@pytest.mark.parametrize("round_no", range(REPEATS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_with_the_defaults(fault: str, round_no: int, tmp_path: Path) -> None:
    took = FAULTS[fault](tmp_path)
    _TIMES.setdefault(fault, []).append(took)
    print(f"{fault}: round {round_no}: {took:.1f}s")


def test_zz_report_the_recovery_times() -> None:
    report = {fault: {"rounds": len(times), "median": round(statistics.median(times), 1),
                      "max": round(max(times), 1)} for fault, times in _TIMES.items()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for fault, figures in report.items():
        print(f"{fault}: median {figures['median']}s, max {figures['max']}s over {figures['rounds']} rounds")
    assert report, "no fault ran"
