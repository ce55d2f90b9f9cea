"""Fleet overhead: `submit` of N `noop` steps against a bare Celery chain of N no-ops.

Both run on one private redis-server and one solo-pool worker with the fleet's Celery
settings (JSON, late acks, events, result backend); each measurement is submit ->
completion, paired (chain then submit), median of --repeat runs, at 100 and 1,000 steps.

    python bench/bench_fleet.py [--repeat 5] [--sizes 100,1000]

Targets: submit/chain <= 1.3 at 100 steps; per-step cost at 1,000 within 1.2x of 100.
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
    from yaml_workflow.executors.celery.submit import submit_run, wait_for_run

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


def main() -> int:
    """Start Redis and a worker, measure, print, stop everything."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="100,1000")
    opts = ap.parse_args()
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
