"""A Redis outage is ridden out: workers stay up, clients reconnect, no step runs twice
because of it (a real redis-server killed and restarted under real workers).

Once each here; ``make soak`` repeats them 20 times with the defaults
(tests/soak/test_fleet_soak.py).  The procedures are in tests/support/fleet_faults.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import fleet_faults as faults

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.serial]


def test_redis_restarted_five_times_with_aof_during_one_run(tmp_path: Path) -> None:
    faults.aof_restarts(tmp_path)  # the shipped settings


def test_redis_restarted_without_persistence_the_run_is_lost_and_resume_finishes_it(tmp_path: Path) -> None:
    faults.empty_restart(tmp_path, {"YAML_WORKFLOW_CLAIM_TTL": "2"})


def test_submit_wait_rides_out_a_ten_second_outage(tmp_path: Path) -> None:
    faults.wait_across_outage(tmp_path)


def test_an_outage_of_three_claim_ttls_runs_no_step_twice(tmp_path: Path) -> None:
    faults.long_outage(tmp_path, {"YAML_WORKFLOW_CLAIM_TTL": "2"})
