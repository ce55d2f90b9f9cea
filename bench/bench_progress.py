"""What progress reporting costs: a 10,000-item batch of trivial items, with and without it.

    python bench/bench_progress.py [--items N] [--repeat R]

Runs the same workflow in-process (local executor, JSON state in the workspace) with
``progress_update: false``, with ``progress_update: true`` at ``progress_interval: 0.5``
(the throttled case a user would choose), and at an interval of 1 µs (every item's
report recorded: the worst case).  Each variant runs R times, interleaved so that drift
of the machine hits all of them alike; the medians are compared.  Target (issue 6): the
0.5 s variant at most 5% slower than without progress.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "off": "progress_update: false",
    "interval 0.5s": "progress_update: true\n    progress_interval: 0.5",
    "interval 1us": "progress_update: true\n    progress_interval: 0.000001",
}


def write_workflow(folder: Path, label: str, keys: str, items: int) -> Path:
    """A python_code step making the items, then a batch that echoes each one."""
    text = f"""name: bench_progress
steps:
  - name: make
    task: python_code
    inputs:
      code: "result = list(range({items}))"
  - name: items
    task: batch
    {keys}
    inputs:
      items: "{{{{ steps.make.result }}}}"
      task:
        task: echo
        inputs:
          message: "{{{{ item }}}}"
"""
    path = folder / f"{label.replace(' ', '_').replace('.', '')}.yaml"
    path.write_text(text)
    return path


def run_once(path: Path, base: Path) -> tuple[float, int]:
    """Wall time of one in-process run, and how many progress reports it recorded."""
    import json

    from yaml_workflow.engine.load import load_workflow
    from yaml_workflow.engine.request import RunRequest
    from yaml_workflow.executors.local_run import start_run

    workflow = load_workflow(path)
    start = time.perf_counter()
    result = start_run(RunRequest(workflow=workflow, base_dir=base))
    elapsed = time.perf_counter() - start
    assert result.ok, result.error
    journal = Path(result.workspace) / ".ywf"
    reports = sum(line.count('"t": "progress"') + line.count('"t":"progress"')
                  for f in journal.rglob("*") if f.is_file() for line in f.read_text(errors="replace").splitlines())
    doc = json.loads((Path(result.workspace) / ".workflow_metadata.json").read_text())
    assert doc["execution_state"]["step_outputs"]["items"]["result"]["stats"]["processed"] > 0
    shutil.rmtree(result.workspace, ignore_errors=True)
    return elapsed, reports


def report_cost(calls: int = 1_000_000) -> float:
    """Seconds per ctx.progress() call that is not due (the path every item takes)."""
    from yaml_workflow.engine.step import _Progress
    from yaml_workflow.spec.models import Step

    class _Quiet:
        observer = staticmethod(lambda kind, event: None)

        def record(self, event: object) -> None:
            return None

    step = Step.model_validate({"name": "s", "task": "noop", "progress_update": True, "progress_interval": 3600})
    report = _Progress(_Quiet(), step)  # type: ignore[arg-type]
    report(0, calls)  # the first report is recorded; the rest are not due
    start = time.perf_counter()
    for i in range(1, calls):
        report(i, calls)
    return (time.perf_counter() - start) / (calls - 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ywf-bench-progress-"))
    base = folder / "runs"
    try:
        print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
              f"Python {platform.python_version()}; {args.items} echo items, median of {args.repeat}")
        paths = {label: write_workflow(folder, label, keys, args.items) for label, keys in VARIANTS.items()}
        for path in paths.values():  # warm-up: imports, the template cache, the page cache
            run_once(path, base)
        times: dict[str, list[float]] = {label: [] for label in VARIANTS}
        reports: dict[str, int] = {}
        labels = list(paths)
        for round_ in range(args.repeat):
            # A different variant goes first each round: no variant always pays for the
            # garbage (and the warm caches) of the one before it.
            for label in labels[round_ % len(labels):] + labels[:round_ % len(labels)]:
                gc.collect()
                elapsed, reports[label] = run_once(paths[label], base)
                times[label].append(elapsed)
        off = statistics.median(times["off"])
        for label in VARIANTS:
            median = statistics.median(times[label])
            print(f"{label:>14}: {median * 1000:8.1f} ms  ({median / args.items * 1e6:6.1f} us/item, "
                  f"min {min(times[label]) * 1000:.0f}, max {max(times[label]) * 1000:.0f} ms, "
                  f"{reports[label]:>5} progress records)  ratio {median / off:.3f}")
        ratio = statistics.median(times["interval 0.5s"]) / off
        best = min(times["interval 0.5s"]) / min(times["off"])
        print(f"progress at 0.5 s / off: {ratio:.3f} (medians), {best:.3f} (best runs)   (target <= 1.05)")
        per_call = report_cost()
        print(f"a report that is not due: {per_call * 1e9:.0f} ns = "
              f"{100 * per_call / (off / args.items):.2f}% of an item's cost in this batch")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
