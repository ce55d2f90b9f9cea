"""A message the broker lost is sent again by the workers' stall sweep, with no command.

The procedures live in tests/support/fleet_faults.py; `make soak` runs them with the
shipped defaults.  Here the stall time is short (3 s) to keep `make test` quick; the
five-restart test in test_fleet_outage.py covers the defaults.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import fleet_faults as faults

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.serial]

QUICK = {"YAML_WORKFLOW_STALL_AFTER": "3", "YAML_WORKFLOW_CLAIM_TTL": "3"}


def test_a_root_message_lost_before_any_worker_took_it_is_sent_again(tmp_path: Path) -> None:
    took = faults.lost_root_message(tmp_path, QUICK)
    print(f"recovered in {took:.1f}s")


def test_a_message_lost_in_the_middle_of_a_run_is_sent_again_to_its_queue(tmp_path: Path) -> None:
    took = faults.lost_message_midway(tmp_path, QUICK)
    print(f"recovered in {took:.1f}s")
