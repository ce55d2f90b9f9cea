"""A dead worker costs seconds, not the visibility timeout (real redis-server, real workers).

Each fault runs once here, bounded at three times its nominal recovery; the SIGKILL of a
whole worker uses the shipped defaults (visibility timeout 30 s, claim TTL 15 s), the
others a claim TTL of 2 s.  ``make soak`` runs each 20 times with the defaults and
reports the median and the maximum recovery time (tests/soak/test_fleet_soak.py).  The
procedures, and what each checks, are in tests/support/fleet_faults.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import fleet_faults as faults
from yaml_workflow.settings import Settings

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.serial]


def test_whole_worker_sigkilled_mid_step_with_the_default_settings(tmp_path: Path) -> None:
    # given two workers with the settings the README ships, nothing tuned
    defaults = Settings.model_fields
    assert defaults["visibility_timeout"].default == 30 and defaults["claim_ttl"].default == 15
    # when the worker running step 3 of 30 dies with all its processes, then the run
    # completes within a minute, the step recorded once, and status said it was stalled
    recovery = faults.whole_worker_sigkill(tmp_path)
    print(f"recovery after a whole-worker SIGKILL with the defaults: {recovery:.1f}s")


def test_a_killed_worker_s_reserved_and_countdown_messages_run_elsewhere(tmp_path: Path) -> None:
    faults.reserved_and_countdown(tmp_path, faults.SHORT)


def test_sigkill_mid_batch_keeps_the_items_finished_before_the_death(tmp_path: Path) -> None:
    faults.mid_batch_sigkill(tmp_path, faults.SHORT)


def test_a_backlog_of_500_queued_steps_is_not_mistaken_for_lost_work(tmp_path: Path) -> None:
    faults.backlog(tmp_path, {**faults.SHORT, "YAML_WORKFLOW_VISIBILITY_TIMEOUT": "3"})


def test_a_step_five_times_longer_than_the_visibility_timeout_runs_once(tmp_path: Path) -> None:
    faults.long_step(tmp_path, {"YAML_WORKFLOW_VISIBILITY_TIMEOUT": "2", "YAML_WORKFLOW_CLAIM_TTL": "2",
                                "YAML_WORKFLOW_RESTORE_INTERVAL": "1"})


def test_no_process_of_the_first_attempt_is_alive_when_the_second_starts(tmp_path: Path) -> None:
    faults.no_survivor(tmp_path, faults.SHORT)
