"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real fleet.

One fleet (redis-server and a worker) and two ``yaml-workflow serve`` processes, one
read-only and one with the action token, serve every test here.  A step waits for a
gate file, so the test decides when it finishes; the page must show the change
without a reload (a marker set on ``window`` survives only if the page was not reloaded).
Set ``YWF_UPDATE_SCREENSHOTS=1`` to write the README's pictures to docs/images.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import launch
from tests.support.dashboard import GATED, DashboardServer, screenshots, submit, submit_examples
from tests.support.workers import Fleet, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.redis]
playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-test-token-93b1"
UPDATE_SCREENSHOTS = os.environ.get("YWF_UPDATE_SCREENSHOTS") == "1"

FLAKY = """
name: flaky_pipeline
params:
  marker: {type: string}
steps:
  - name: fetch
    task: echo
    inputs: {message: fetched}
  - name: flaky
    task: python_code
    inputs:
      code: |
        import os
        if not os.path.exists(args["marker"]):
            raise RuntimeError("the marker file is missing")
        result = "fixed"
  - name: report
    task: echo
    inputs: {message: reported}
"""


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    f = Fleet(workers=1, concurrency=2)
    try:
        f.start()
        yield f
    finally:
        f.stop()
        shutil.rmtree(f.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def servers(fleet: Fleet) -> Iterator[dict[str, DashboardServer]]:
    started = {"read_only": DashboardServer(fleet.env, cwd=fleet.dir),
               "token": DashboardServer(fleet.env, cwd=fleet.dir, token=TOKEN)}
    try:
        for server in started.values():
            server.start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


def run_doc(fleet: Fleet, run_id: str) -> dict[str, Any]:
    """The run's document as the fleet's Redis holds it."""
    from yaml_workflow.state.stores.redis import RedisStore

    store = RedisStore(fleet.server.url, prefix=fleet.server.prefix)
    try:
        return store.load(run_id)
    finally:
        store.close()


def run_status(fleet: Fleet, run_id: str) -> str:
    return str(run_doc(fleet, run_id)["status"])


def step_status(fleet: Fleet, run_id: str, step: str) -> str:
    return str(run_doc(fleet, run_id)["execution_state"]["step_outputs"].get(step, {}).get("status", "pending"))


def node_class(page: Any, step: str) -> str:
    return str(page.evaluate(
        "s => { for (const g of document.querySelectorAll('svg.graph g.node')) "
        "if (g.dataset.step === s) return g.getAttribute('class'); return ''; }", step))


def test_a_running_fleet_run_updates_live_in_the_browser(fleet: Fleet, servers: dict[str, DashboardServer],
                                                         page: Any) -> None:
    others = submit_examples(fleet, ROOT)  # company for the runs list's picture
    gate = fleet.dir / "gate-open"
    run_id = submit(fleet, GATED, "gated.yaml", gate=str(gate))
    base = servers["read_only"].url
    wait_for(lambda: step_status(fleet, run_id, "wait_for_gate") == "running", 30,
             "wait_for_gate to run on the worker")
    # when the runs list is opened and the run's row clicked (an href link)
    page.goto(base + "/")
    row = page.locator(f'tr[data-run="{run_id}"]')
    assert row.locator(".badge").inner_text() == "running"
    row.locator("a").click()
    page.wait_for_url(f"{base}/runs/{run_id}")
    # then the graph has a node per step, and the gated step is running
    nodes = page.locator("svg.graph g.node")
    assert sorted(nodes.evaluate_all("els => els.map(e => e.dataset.step)")) == sorted(
        ["prepare", "wait_for_gate", "side_task", "publish"])
    assert page.locator("svg.graph path.edge").count() == 4
    assert "s-running" in node_class(page, "wait_for_gate")
    assert "s-pending" in node_class(page, "publish")
    page.evaluate("window.__notReloaded = true")
    # the README's pictures, taken in another tab while the run is half done
    for other_id in others:
        wait_for(lambda o=other_id: run_status(fleet, o) == "completed", 30, f"example run {other_id}")
    out = ROOT / "docs" / "images" if UPDATE_SCREENSHOTS else fleet.dir / "screenshots"
    other = page.context.new_page()
    for picture in screenshots(other, base, run_id, out):
        assert picture.stat().st_size > 10_000
    other.close()
    # when the step finishes on the worker
    gate.touch()
    wait_for(lambda: step_status(fleet, run_id, "wait_for_gate") == "completed", 30,
             "wait_for_gate to complete in the store")
    # then within 2 s it turns green on the page, without a reload
    page.wait_for_function(
        "() => [...document.querySelectorAll('svg.graph g.node')].some("
        "g => g.dataset.step === 'wait_for_gate' && g.classList.contains('s-completed'))", timeout=2_000)
    row_status = page.locator('#steps tr[data-step="wait_for_gate"]').get_attribute("data-status")
    assert row_status == "completed"
    page.wait_for_function("() => document.body.dataset.runStatus === 'completed'", timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True
    assert page.locator("form[action*='/actions/']").count() == 0  # read-only: nothing to press


def test_with_a_token_retry_on_a_failed_step_completes_the_run(fleet: Fleet, servers: dict[str, DashboardServer],
                                                               page: Any) -> None:
    marker = fleet.dir / "flaky-fixed"
    run_id = submit(fleet, FLAKY, "flaky.yaml", marker=str(marker))
    wait_for(lambda: run_status(fleet, run_id) == "failed", 30, "the run to fail at flaky")
    base = servers["token"].url
    page.goto(f"{base}/runs/{run_id}")
    assert page.locator("form[action*='/actions/']").count() == 0  # not signed in yet
    page.click("text=Sign in with the action token")
    page.fill("input[name=token]", TOKEN)
    page.click("button:has-text('sign in')")
    page.wait_for_url(f"{base}/runs/{run_id}")
    retry = page.locator('#steps tr[data-step="flaky"] .act-retry button')
    assert retry.is_visible()
    assert not page.locator('#steps tr[data-step="fetch"] .act-retry button').is_visible()
    marker.touch()
    retry.click()
    page.wait_for_url(f"{base}/runs/{run_id}")
    assert "runs again" in page.locator(".flash").inner_text()
    page.wait_for_function("() => document.body.dataset.runStatus === 'completed'", timeout=30_000)
    assert page.locator('#steps tr[data-step="report"]').get_attribute("data-status") == "completed"
    assert "s-completed" in node_class(page, "flaky")
    assert run_status(fleet, run_id) == "completed"


def test_without_a_token_no_action_is_offered_and_a_forged_post_is_refused(
        fleet: Fleet, servers: dict[str, DashboardServer], page: Any) -> None:
    marker = fleet.dir / "never-there"
    run_id = submit(fleet, FLAKY, "flaky2.yaml", marker=str(marker))
    wait_for(lambda: run_status(fleet, run_id) == "failed", 30, "the run to fail at flaky")
    base = servers["read_only"].url
    page.goto(f"{base}/runs/{run_id}")
    assert page.locator("form[action*='/actions/']").count() == 0
    assert page.locator("button").count() == 0
    assert page.locator("text=sign in").count() == 0
    # a POST forged from the page itself (same origin, even with a token guess) is refused
    statuses = page.evaluate(
        """async (run) => {
             const out = [];
             for (const action of ['retry', 'skip', 'cancel', 'resume']) {
               const r = await fetch('/runs/' + run + '/actions/' + action, {method: 'POST',
                 headers: {'Content-Type': 'application/x-www-form-urlencoded', 'Authorization': 'Bearer guess'},
                 body: 'step=flaky'});
               out.push(r.status);
             }
             return out;
           }""", run_id)
    assert statuses == [403, 403, 403, 403]
    assert run_status(fleet, run_id) == "failed"
    assert step_status(fleet, run_id, "flaky") == "failed"
