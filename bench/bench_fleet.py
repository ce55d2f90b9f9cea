"""Fleet overhead: `submit` of N `noop` steps against a bare Celery chain of N no-ops;
then fleet throughput: many small runs on two prefork workers.

Overhead: both run on one private redis-server and one solo-pool worker with the fleet's
Celery settings (JSON, late acks, events, result backend); each measurement is submit ->
completion, paired (chain then submit), median of --repeat runs, at 100 and 1,000 steps.
Targets: submit/chain <= 1.3 at 100 steps; per-step cost at 1,000 within 1.2x of 100.

Throughput: --runs runs (200) of a --steps-step workflow (5 `noop` steps) submitted
in-process with `submit_run` (no --wait) to --workers real `yaml-workflow worker`
processes (2, prefork, --concurrency 2 each) on a private redis-server, then the runs'
status is polled in Redis until every run is completed.  Reported: the submit rate, and
runs/s and steps/s from the first submit to the last completion.

    python bench/bench_fleet.py [--repeat 9] [--sizes 100,1000]   # overhead, then throughput
    python bench/bench_fleet.py --throughput [--runs 200] [--steps 5] [--workers 2] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))

from yaml_workflow.executors.celery.app import create_app  # noqa: E402

app = create_app("ywf-bench")


@app.task(name="bench.noop", acks_late=True)
def noop() -> None:
    """The bare chain's link: does nothing."""
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chain(n: int) -> float:
    from celery import chain

    started = time.perf_counter()
    result = chain(noop.si() for _ in range(n)).apply_async()
    result.get(timeout=600, interval=0.05)
    return time.perf_counter() - started


def _workflow(tmp: Path, n: int) -> Path:
    path = tmp / f"noop{n}.yaml"
    lines = [f"name: noop{n}", "steps:"]
    lines += [f"  - {{name: s{i}, task: noop}}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _submit(path: Path, base: Path) -> float:
    from yaml_workflow.engine.load import load_workflow
    from yaml_workflow.engine.request import RunRequest
    from yaml_workflow.executors.celery.follow import wait_for_run
    from yaml_workflow.executors.celery.submit import submit_run

    workflow = load_workflow(path)
    started = time.perf_counter()
    run_id = submit_run(RunRequest(workflow=workflow, base_dir=base), app=app)
    result = wait_for_run(run_id, timeout=600, app=app)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"bench run failed: {result.error}")
    return elapsed


def _ms(seconds: float, n: int) -> str:
    return f"{1000 * seconds / n:.2f} ms/step"


_THROUGHPUT_ENV = ("YAML_WORKFLOW_BROKER_URL", "YAML_WORKFLOW_STATE_URL", "YAML_WORKFLOW_KEY_PREFIX",
                   "YAML_WORKFLOW_WORKSPACE_ROOT")


def _finished(client: Any, prefix: str, run_ids: list[str]) -> dict[str, str]:
    """The runs of ``run_ids`` that have ended, with their status (as FleetState.status)."""
    from yaml_workflow.state.document import FINISHED

    pipe = client.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.hget(f"{prefix}:run:{run_id}", "status")
        pipe.hget(f"{prefix}:run:{run_id}:fleet", "status")
    values = [v.decode() if v else "" for v in pipe.execute()]
    out = {}
    for i, run_id in enumerate(run_ids):
        run, fleet = values[2 * i], values[2 * i + 1]
        status = "cancelled" if run == "cancelled" else (fleet or run)
        if status in FINISHED:
            out[run_id] = status
    return out


def throughput(runs: int = 200, steps: int = 5, workers: int = 2, concurrency: int = 2,
               timeout: float = 600.0) -> dict[str, float]:
    """Submit ``runs`` runs of ``steps`` noop steps without waiting, to a fleet of
    ``workers`` prefork workers, and time them until all are completed."""
    import redis

    from tests.support.workers import Fleet
    from yaml_workflow.engine.load import load_workflow
    from yaml_workflow.engine.request import RunRequest
    from yaml_workflow.executors.celery.follow import wait_for_run
    from yaml_workflow.executors.celery.submit import submit_run

    fleet = Fleet(workers=workers, pool="prefork", concurrency=concurrency)
    saved = {k: os.environ.get(k) for k in _THROUGHPUT_ENV}
    try:
        os.environ.update({k: fleet.env[k] for k in _THROUGHPUT_ENV})
        fleet.start()
        tp_app = create_app("ywf-bench-throughput")  # the fleet's settings, from the environment
        workflow = load_workflow(_workflow(fleet.dir, steps))
        base = fleet.dir / "runs"
        # One run first: the workers have imported everything and hold their connections.
        warm = submit_run(RunRequest(workflow=workflow, base_dir=base), app=tp_app)
        if not wait_for_run(warm, timeout=120, app=tp_app).ok:
            raise SystemExit("the warm-up run failed")
        client = redis.Redis.from_url(fleet.server.url)
        prefix = fleet.server.prefix
        started = time.perf_counter()
        run_ids = [submit_run(RunRequest(workflow=workflow, base_dir=base), app=tp_app)
                   for _ in range(runs)]
        submitted = time.perf_counter()
        pending, done = list(run_ids), {}
        deadline = time.monotonic() + timeout
        while pending:
            done.update(_finished(client, prefix, pending))
            pending = [r for r in pending if r not in done]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{len(pending)} of {runs} runs not finished after {timeout:g}s")
            time.sleep(0.05)
        finished = time.perf_counter()
        bad = {r: s for r, s in done.items() if s != "completed"}
        if bad:
            raise SystemExit(f"{len(bad)} runs did not complete: {sorted(set(bad.values()))}")
        total, submit = finished - started, submitted - started
        return {"runs": runs, "steps": steps, "workers": workers, "concurrency": concurrency,
                "submit_s": submit, "total_s": total, "submit_rate": runs / submit,
                "runs_per_s": runs / total, "steps_per_s": runs * steps / total}
    finally:
        fleet.stop()
        shutil.rmtree(fleet.dir, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _print_throughput(r: dict[str, float]) -> None:
    print(f"throughput: {r['runs']:.0f} runs x {r['steps']:.0f} noop steps, {r['workers']:.0f} prefork "
          f"workers x concurrency {r['concurrency']:.0f}", flush=True)
    print(f"  submit   {r['submit_s']:7.2f}s  {r['submit_rate']:7.1f} runs/s submitted (in-process submit_run)")
    print(f"  complete {r['total_s']:7.2f}s  {r['runs_per_s']:7.1f} runs/s  {r['steps_per_s']:7.1f} steps/s "
          "(first submit -> last run completed)", flush=True)


def main() -> int:
    """Overhead (unless --throughput), then throughput; each starts and stops its own Redis."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=9)  # a 0.5 s run on a shared VM needs many pairs
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--throughput", action="store_true", help="only the throughput measurement")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=2)
    opts = ap.parse_args()
    if not opts.throughput:
        code = overhead(opts)
        if code:
            return code
    _print_throughput(throughput(opts.runs, opts.steps, opts.workers, opts.concurrency))
    return 0


def overhead(opts: argparse.Namespace) -> int:
    """Start Redis and a worker, measure submit against a bare chain, print, stop everything."""
    tmp = Path(tempfile.mkdtemp(prefix="ywf-bench-"))
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "YAML_WORKFLOW_BROKER_URL": url, "YAML_WORKFLOW_STATE_URL": url,
           "YAML_WORKFLOW_KEY_PREFIX": "ywfbench"}
    os.environ.update({k: env[k] for k in ("YAML_WORKFLOW_BROKER_URL", "YAML_WORKFLOW_STATE_URL",
                                           "YAML_WORKFLOW_KEY_PREFIX")})
    app.conf.update(broker_url=url, result_backend=url)
    procs = [subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen(
            [sys.executable, str(HERE), "--worker"], env=env, stdout=open(tmp / "worker.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while not (app.control.ping(timeout=0.5) or []):
            if time.monotonic() > deadline:
                raise SystemExit("the bench worker did not answer a ping")
        results = {}
        for n in [int(s) for s in opts.sizes.split(",")]:
            path = _workflow(tmp, n)
            _chain(min(n, 20)), _submit(_workflow(tmp, 5), tmp / "runs")  # warm both paths
            chains, submits = [], []
            for _ in range(opts.repeat):
                chains.append(_chain(n))
                submits.append(_submit(path, tmp / "runs"))
            c, s = statistics.median(chains), statistics.median(submits)
            results[n] = (c, s)
            print(f"{n:>5} steps  chain {c:7.3f}s ({_ms(c, n)})  submit {s:7.3f}s ({_ms(s, n)})  "
                  f"ratio {s / c:.2f}", flush=True)
        if 100 in results and 1000 in results:
            flat = (results[1000][1] / 1000) / (results[100][1] / 100)
            print(f"per-step cost of submit at 1,000 vs 100 steps: {flat:.2f}x "
                  f"(target <= 1.2); ratio at 100: {results[100][1] / results[100][0]:.2f} (target <= 1.3)")
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        app.worker_main(["worker", "-E", "--pool=solo", "--loglevel=WARNING",
                         "--without-mingle", "--without-gossip", "--hostname=bench@%h"])
    else:
        sys.exit(main())
