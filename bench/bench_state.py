"""State layer speed: Redis store transitions per second, mirror cost per transition.

    python bench/bench_state.py [--quick]

Starts its own redis-server on a free port (never the one on 6379).  Prints a table; no
asserts.  What issue 3 asks to report: the transitions per second RedisStore.record
sustains from one process (each one MULTI/EXEC round trip), and what the JSON mirror
(journal append + compaction at most once a second) costs per transition when a run
has 100 and 10,000 steps.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.redis_server import RedisServer  # noqa: E402
from yaml_workflow.state import mirror as mirror_mod  # noqa: E402
from yaml_workflow.state.document import now_iso, step_event  # noqa: E402
from yaml_workflow.state.mirror import Mirror  # noqa: E402


def step_pair(n: int) -> list[dict[str, Any]]:
    """The two transitions of one step: running, then completed with a small result."""
    return [step_event(f"s{n}", "running", attempt=1, started_at=time.time()),
            step_event(f"s{n}", "completed", result={"n": n, "ok": True}, duration=0.001)]


def header(run_id: str, workspace: Path) -> dict[str, Any]:
    """A run transition."""
    return {"t": "run", "at": time.time(), "workflow_id": run_id, "name": "bench",
            "start_time": now_iso(), "status": "running", "workspace": str(workspace)}


def bench_redis(url: str, steps: int) -> dict[str, float]:
    """Transitions per second of RedisStore.record (and round trips per transition)."""
    import redis

    from yaml_workflow.state.stores.redis import RedisStore

    store = RedisStore(url, prefix="bench")
    store.create_run(header("redis-bench", Path("/nonexistent")))
    sent = [0]
    real = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        real(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        events = [e for n in range(steps) for e in step_pair(n)]
        started = time.perf_counter()
        for event in events:
            store.record("redis-bench", event)
        elapsed = time.perf_counter() - started
    finally:
        redis.connection.AbstractConnection.send_packed_command = real  # type: ignore[method-assign]
    load_started = time.perf_counter()
    doc = store.load("redis-bench")
    load_time = time.perf_counter() - load_started
    assert len(doc["execution_state"]["step_outputs"]) == steps
    store.delete_run("redis-bench")
    store.close()
    return {"transitions": len(events), "seconds": elapsed, "per_second": len(events) / elapsed,
            "round_trips": sent[0] / len(events), "load_ms": load_time * 1000}


def bench_mirror(steps: int) -> dict[str, float]:
    """Mean cost of one mirror transition (append + its share of compaction) at ``steps`` steps."""
    folder = Path(tempfile.mkdtemp(prefix="ywf-bench-mirror-"))
    rewrites = [0]
    real = mirror_mod.write_atomically

    def counting(path: Path, text: str) -> None:
        rewrites[0] += 1
        real(path, text)

    mirror_mod.write_atomically = counting
    try:
        mirror = Mirror(folder)
        mirror.write_header(header("mirror-bench", folder))
        events = [e for n in range(steps) for e in step_pair(n)]
        tail = max(1, len(events) // 10)
        started = time.perf_counter()
        tail_started = started
        for i, event in enumerate(events):
            if i == len(events) - tail:
                tail_started = time.perf_counter()
            mirror.append(event)
        ended = time.perf_counter()
        mirror.compact(force=True)
        # What keeping the file current costs each second once the run is this big:
        # one rewrite after one more transition.
        mirror.append(step_event("one-more", "completed", result=0))
        rewrite_started = time.perf_counter()
        mirror.compact(force=True)
        rewrite = time.perf_counter() - rewrite_started
        mirror.close()
        size = (folder / mirror_mod.STATE_FILE).stat().st_size
    finally:
        mirror_mod.write_atomically = real
        shutil.rmtree(folder, ignore_errors=True)
    return {"transitions": len(events), "mean_us": (ended - started) / len(events) * 1e6,
            "tail_us": (ended - tail_started) / tail * 1e6, "rewrites": rewrites[0],
            "rewrite_ms": rewrite * 1000, "size_kb": size / 1024}


def main() -> None:
    """Run the benchmarks and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer transitions")
    args = parser.parse_args()
    redis_steps = 2_000 if args.quick else 10_000
    print(f"state layer benchmark  python {platform.python_version()}  {platform.machine()}")
    server = RedisServer().start()
    try:
        r = bench_redis(server.url, redis_steps)
    finally:
        server.stop()
    print("\nRedisStore.record, one process, redis-server on 127.0.0.1 (no persistence)")
    print(f"  {r['transitions']:>7,.0f} transitions in {r['seconds']:.2f} s  ->  "
          f"{r['per_second']:,.0f} transitions/s, {r['round_trips']:.2f} round trips each")
    print(f"  load() of the {redis_steps:,}-step run: {r['load_ms']:.1f} ms (one round trip)")
    print("\nJSON mirror (a journal line per transition; the file rewritten at most once a second)")
    print(f"  {'steps':>7} {'transitions':>12} {'us/transition':>14} {'last 10%':>10} "
          f"{'rewrites':>9} {'one rewrite':>12} {'file':>9}")
    for steps in (100, 10_000):
        m = bench_mirror(steps)
        print(f"  {steps:>7,} {m['transitions']:>12,.0f} {m['mean_us']:>14.1f} {m['tail_us']:>10.1f} "
              f"{m['rewrites']:>9,.0f} {m['rewrite_ms']:>9.1f} ms {m['size_kb']:>6.0f} KB")
    print("  us/transition: append plus its share of the rewrites, over the whole run and its last 10%;")
    print("  one rewrite: the once-a-second cost of keeping the file current at that size.")


if __name__ == "__main__":
    main()
