"""Local executor speed: startup, 1,000 python_code steps, per-step cost as runs grow.

    python bench/bench_local.py [--quick]

Prints a table; the README quotes it.  Targets (issue 2): a one-step workflow under
0.2 s and 1,000 `result = 1` steps under 1 s of wall time, both as the command a user
types; per-step cost at 10,000 steps within 1.5x of the cost at 100.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "yaml_workflow"]


def write_workflow(folder: Path, steps: int) -> Path:
    """A workflow of ``steps`` python_code steps that each set result = 1."""
    lines = [f"name: bench_{steps}", "steps:"]
    for i in range(steps):
        lines += [f"  - name: s{i}", "    task: python_code", "    inputs:", "      code: 'result = 1'"]
    path = folder / f"bench_{steps}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def time_cli(workflow: Path, base: Path, repeat: int) -> float:
    """Median wall time of `yaml-workflow run` as a subprocess."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([*CLI, "run", str(workflow), "--base-dir", str(base), "-q"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_in_process(workflow_path: Path, base: Path) -> float:
    """Wall time of the run itself (workflow already loaded, imports done)."""
    from yaml_workflow.engine.load import load_workflow
    from yaml_workflow.engine.request import RunRequest
    from yaml_workflow.executors.local_run import start_run

    workflow = load_workflow(workflow_path)
    start = time.perf_counter()
    result = start_run(RunRequest(workflow=workflow, base_dir=base))
    elapsed = time.perf_counter() - start
    assert result.ok, result.error
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-step run")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ywf-bench-"))
    base = folder / "runs"
    try:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).parents[1] / "yaml_workflow")],
                       check=False, stdout=subprocess.DEVNULL)
        print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
              f"Python {platform.python_version()}")
        one = time_cli(write_workflow(folder, 1), base, 7)
        thousand = time_cli(write_workflow(folder, 1000), base, 5)
        print(f"CLI, 1 step:        {one * 1000:8.1f} ms   (target < 200 ms)")
        print(f"CLI, 1,000 steps:   {thousand * 1000:8.1f} ms   (target < 1000 ms)")
        sizes = [100, 1000] if args.quick else [100, 1000, 10000]
        per_step = {}
        for n in sizes:
            elapsed = min(time_in_process(write_workflow(folder, n), base) for _ in range(3 if n < 10000 else 1))
            per_step[n] = elapsed / n
            print(f"in-process, {n:>6} steps: {elapsed * 1000:9.1f} ms  = {per_step[n] * 1e6:7.1f} us/step")
        last = sizes[-1]
        print(f"per-step cost at {last} / at 100: {per_step[last] / per_step[100]:.2f}x   (target <= 1.5x)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
