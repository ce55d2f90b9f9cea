"""The dashboard's runs list with 10,000 runs in Redis: how long the first page takes.

    python bench/bench_dashboard.py [--runs 10000] [--requests 10]

Starts its own redis-server on a free port (never the one on 6379), stores N finished
five-step runs in it (as the fleet would leave them: steps done on three hosts), starts
`yaml-workflow serve` on a free loopback port and times whole HTTP requests from this
process: the first page of the runs list (target: median < 300 ms), a filtered page,
the JSON the page polls, and one run's page.  Prints a table; no asserts.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.dashboard import DashboardServer  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from yaml_workflow.state.document import new_document, now_iso  # noqa: E402
from yaml_workflow.state.stores.redis import RedisStore  # noqa: E402

STEPS = ("extract", "clean", "enrich", "load", "report")


def document(i: int, start: float) -> dict[str, object]:
    """A finished fleet run: five steps done on three hosts, every seventh one failed."""
    run_id = f"bench{i:06d}"
    failed = i % 7 == 0
    doc = new_document({"workflow_id": run_id, "name": f"pipeline_{i % 5}", "start_time": now_iso(start),
                        "status": "failed" if failed else "completed", "workspace": f"/shared/runs/{run_id}",
                        "params": {"batch": i}, "plan": {"order": list(STEPS)}, "mode": "fleet"})
    records = doc["execution_state"]["step_outputs"]  # type: ignore[index]
    for n, step in enumerate(STEPS):
        status = "failed" if failed and n == 3 else "completed"
        records[step] = {"status": status, "attempt": 1, "duration": 0.2 + n / 10,
                         "host": f"w{(i + n) % 3}@node", "result": {"rows": i * n}}
        if status == "failed":
            break
    doc["last_updated"] = now_iso(start + 3)
    return doc


def timed(port: int, path: str, count: int) -> list[float]:
    """Seconds of ``count`` GET requests (a new connection each, as a browser's first load)."""
    times = []
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        began = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        times.append(time.perf_counter() - began)
        conn.close()
        if response.status != 200 or not body:
            raise SystemExit(f"GET {path}: {response.status}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=10)
    opts = parser.parse_args()
    server = RedisServer().start()
    work = Path(tempfile.mkdtemp(prefix="ywf-bench-dash-"))
    dashboard = None
    try:
        store = RedisStore(server.url, prefix=server.prefix)
        began = time.perf_counter()
        start = time.time() - opts.runs * 10
        for i in range(opts.runs):
            store.restore_run(document(i, start + i * 10))
        print(f"stored {opts.runs} runs in {time.perf_counter() - began:.1f}s", file=sys.stderr)
        env = {**os.environ, **server.env(), "YAML_WORKFLOW_WORKSPACE_ROOT": str(work / "runs")}
        dashboard = DashboardServer(env, cwd=work).start()
        timed(dashboard.port, "/", 2)  # imports and the first connection pool
        rows = [
            ("runs list, first page (50 rows)", "/"),
            ("runs list, page 2", "/?offset=50"),
            ("runs list, status=failed", "/?status=failed"),
            ("runs list, workflow=pipeline_3", "/?workflow=pipeline_3"),
            ("runs list, a filter no run matches (reads all)", "/?workflow=nothing"),
            ("runs list JSON (what the page polls)", "/api/runs"),
            ("one run's page", f"/runs/bench{opts.runs - 1:06d}"),
            ("one run's JSON (polled every second)", f"/api/runs/bench{opts.runs - 1:06d}"),
        ]
        print(f"# {opts.runs} runs in Redis; {platform.machine()}, Python {platform.python_version()}; "
              f"median of {opts.requests} requests")
        print(f"{'what':<48} {'median':>9} {'min':>9} {'max':>9}")
        for label, path in rows:
            times = timed(dashboard.port, path, opts.requests)
            print(f"{label:<48} {statistics.median(times) * 1000:>7.1f}ms {min(times) * 1000:>7.1f}ms "
                  f"{max(times) * 1000:>7.1f}ms")
    finally:
        if dashboard is not None:
            dashboard.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
