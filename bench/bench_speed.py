"""Speed, every row side by side in one run: CLI start-up against yaml-workflow 0.9.6, the
local executor, `submit`, the fleet's per-step latency against a bare Celery chain, the
fleet's throughput against bare Celery, and a worker's memory after many runs.

    python bench/bench_speed.py [--rounds 7] [--only startup,local,submit,latency,throughput,memory]

Start-up is measured the way users install: this checkout and yaml-workflow 0.9.6 are
built/installed as wheels into virtualenvs of their own under bench/.cache (rebuilt when
the sources change), with .pyc files compiled and PYTHONDONTWRITEBYTECODE unset.  Every
compared pair is timed in the same round, alternating which goes first; a row prints the
median of the rounds, the spread (min-max over rounds) and its target.

The fleet rows use private redis-servers (never 6379).  Latency: in-process submit_run +
wait_for_run of N noop steps against a bare Celery chain of N no-op links (the settings a
careful Celery user picks: JSON, acks_late, reject_on_worker_lost, prefetch 1, events, no
result backend), one prefork worker x 2 on each side.  Throughput: the shared pair script
(shared/bench/fleet_throughput_pair.py).  Memory: RSS of a worker and its pool children
after 100 one-step runs and after 10,000.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = Path(os.environ.get("YWF_BENCH_CACHE", HERE / ".cache"))
BASELINE = "yaml-workflow==0.9.6"
# Children run the way users run them: .pyc files read and written.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("YAML_WORKFLOW_")}

# --- the bare Celery side of the latency rows (this module is its workers' app) -------------------
BARE_URL = os.environ.get("SPEED_BARE_URL", "redis://127.0.0.1:1/0")
bare_app: Any = None
if os.environ.get("SPEED_BARE_URL") or __name__ == "__main__":
    from celery import Celery

    bare_app = Celery("speed_bare", broker=BARE_URL)
    bare_app.conf.update(
        task_serializer="json", accept_content=["json"], task_acks_late=True,
        task_reject_on_worker_lost=True, worker_prefetch_multiplier=1, worker_send_task_events=True,
        task_send_sent_event=True, task_ignore_result=True, broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    _counter: Any = None

    @bare_app.task(name="speed_bare.link", ignore_result=True, acks_late=True)
    def link() -> None:
        """A no-op link that counts itself (the submitter waits on the count)."""
        global _counter
        if _counter is None:
            import redis

            _counter = redis.Redis.from_url(BARE_URL)
        _counter.incr("speed_bare:done")


# --- rows ------------------------------------------------------------------------------------------
class Row:
    """One line of the table: samples per round, how to show them and the target."""

    def __init__(self, name: str, unit: str, target: float, kind: str = "max") -> None:
        self.name, self.unit, self.target, self.kind = name, unit, target, kind
        self.samples: list[float] = []
        self.note = ""

    def line(self) -> str:
        if not self.samples:
            return f"| {self.name} | - | - | {self._fmt(self.target)} ({'<=' if self.kind == 'max' else '>='}) | {self.note or 'not run'} |"
        med = statistics.median(self.samples)
        ok = med <= self.target if self.kind == "max" else med >= self.target
        op = "<=" if self.kind == "max" else ">="
        return (f"| {self.name} | **{self._fmt(med)}** | {self._fmt(min(self.samples))}-{self._fmt(max(self.samples))} "
                f"| {op} {self._fmt(self.target)} | {'met' if ok else 'MISSED'}{'; ' + self.note if self.note else ''} |")

    def _fmt(self, v: float) -> str:
        return f"{v:.2f}x" if self.unit == "x" else f"{v:.3f} s" if self.unit == "s" else f"{v:+.0f} MB"

    def as_dict(self) -> dict[str, Any]:
        med = statistics.median(self.samples) if self.samples else None
        return {"row": self.name, "unit": self.unit, "median": med, "samples": self.samples,
                "target": self.target, "kind": self.kind, "note": self.note}


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Wall time of a command as a user types it (stdout discarded); fails loudly."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return took


def interleave(rounds: int, pairs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Time every named function once per round, alternating the order between rounds."""
    out: dict[str, list[float]] = {k: [] for k in pairs}
    names = list(pairs)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            out[name].append(pairs[name]())
    return out


# --- the two installs ------------------------------------------------------------------------------
def _source_digest() -> str:
    h = hashlib.sha256()
    for folder in ("yaml_workflow", "workers"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode())
                h.update(path.read_bytes())
    h.update((ROOT / "pyproject.toml").read_bytes())
    return h.hexdigest()[:16]


def _venv(path: Path) -> Path:
    if not (path / "bin" / "python").exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(path)], check=True)
    return path / "bin"


def _compile(bin_dir: Path) -> None:
    site = subprocess.run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([str(bin_dir / "python"), "-m", "compileall", "-q", "-j", "0", site], env=ENV,
                   stdout=subprocess.DEVNULL, check=False)


def install_ours() -> Path:
    """This checkout as a wheel (with the fleet extra) in bench/.cache/ours; its bin folder."""
    bin_dir = _venv(CACHE / "ours")
    stamp = CACHE / "ours" / "source-digest"
    digest = _source_digest()
    if not stamp.exists() or stamp.read_text() != digest:
        wheels = CACHE / "wheels"
        shutil.rmtree(wheels, ignore_errors=True)
        build = Path(tempfile.mkdtemp(prefix="ywf-wheel-"))
        try:  # build from a copy: setuptools writes build/ and egg-info next to the sources
            for name in ("yaml_workflow", "workers", "pyproject.toml", "README.md"):
                src = ROOT / name
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, build / name)
            subprocess.run([str(bin_dir / "pip"), "wheel", "-q", "--no-deps", "-w", str(wheels), str(build)],
                           check=True, env=ENV)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        wheel = next(wheels.glob("yaml_workflow-*.whl"))
        pip = [str(bin_dir / "pip"), "install", "-q"]
        subprocess.run([*pip, f"{wheel}[fleet]"], check=True, env=ENV)
        subprocess.run([*pip, "--force-reinstall", "--no-deps", str(wheel)], check=True, env=ENV)
        _compile(bin_dir)
        stamp.write_text(digest)
    return bin_dir


def install_baseline() -> Path:
    """yaml-workflow 0.9.6 from the package index in bench/.cache/v096; its bin folder."""
    bin_dir = _venv(CACHE / "v096")
    if not (bin_dir / "yaml-workflow").exists():
        subprocess.run([str(bin_dir / "pip"), "install", "-q", BASELINE], check=True, env=ENV)
        _compile(bin_dir)
    return bin_dir


def workflow(folder: Path, name: str, steps: int, task: str = "noop") -> Path:
    """A workflow of ``steps`` steps of ``task`` (python_code steps set result = 1)."""
    lines = [f"name: {name}", "steps:"]
    for i in range(steps):
        if task == "python_code":
            lines += [f"  - name: s{i}", "    task: python_code", "    inputs:", "      code: 'result = 1'"]
        else:
            lines.append(f"  - {{name: s{i}, task: {task}}}")
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- start-up and local ----------------------------------------------------------------------------
def startup_rows(rounds: int, tmp: Path, rows: dict[str, Row]) -> None:
    ours, base = install_ours() / "yaml-workflow", install_baseline() / "yaml-workflow"
    one = workflow(tmp, "one", 1)
    runs_o, runs_b = tmp / "runs-ours", tmp / "runs-base"
    # a finished local run for `status`
    subprocess.run([str(ours), "run", str(one), "--base-dir", str(runs_o)], check=True, env=ENV, cwd=tmp,
                   stdout=subprocess.DEVNULL)
    done = next(runs_o.iterdir())
    for _ in range(2):  # warm the page cache of both installs
        timed([str(ours), "--help"], tmp), timed([str(base), "--help"], tmp)
    t = interleave(rounds, {
        "run_o": lambda: timed([str(ours), "run", str(one), "--base-dir", str(runs_o)], tmp),
        "run_b": lambda: timed([str(base), "run", str(one), "--base-dir", str(runs_b)], tmp),
        "val_o": lambda: timed([str(ours), "validate", str(one)], tmp),
        "val_b": lambda: timed([str(base), "validate", str(one)], tmp),
        "help_o": lambda: timed([str(ours), "--help"], tmp),
        "help_b": lambda: timed([str(base), "--help"], tmp),
        "status_o": lambda: timed([str(ours), "status", str(done)], tmp),
    })
    ratio = lambda a, b: [x / y for x, y in zip(t[a], t[b], strict=True)]  # noqa: E731
    rows["run"].samples = ratio("run_o", "run_b")
    rows["validate"].samples = ratio("val_o", "val_b")
    rows["help"].samples = ratio("help_o", "help_b")
    rows["status"].samples = ratio("status_o", "run_o")
    for key, a, b in (("run", "run_o", "run_b"), ("validate", "val_o", "val_b"), ("help", "help_o", "help_b")):
        rows[key].note = f"{statistics.median(t[a]):.3f} vs {statistics.median(t[b]):.3f} s"
    rows["status"].note = f"{statistics.median(t['status_o']):.3f} vs run {statistics.median(t['run_o']):.3f} s"


def local_rows(rounds: int, tmp: Path, rows: dict[str, Row]) -> None:
    ours = install_ours() / "yaml-workflow"
    big = workflow(tmp, "py1000", 1000, "python_code")
    timed([str(ours), "run", str(big), "--base-dir", str(tmp / "runs-local")], tmp)
    rows["local"].samples = [timed([str(ours), "run", str(big), "--base-dir", str(tmp / "runs-local")], tmp)
                             for _ in range(rounds)]


# --- the fleet -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Side:
    """A private redis-server and the processes of one side of the comparison."""

    def __init__(self, tmp: Path, name: str) -> None:
        import redis

        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp / name
        self.dir.mkdir()
        self.procs = [subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                        "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL)]
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)

    def spawn(self, argv: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=env, cwd=self.dir, stdout=open(self.dir / log, "wb"),  # noqa: SIM115
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _worker_argv(python: str, name: str, concurrency: int = 2) -> list[str]:
    return [python, "-m", "yaml_workflow", "worker", "--pool", "prefork", "--concurrency", str(concurrency),
            "--hostname", f"{name}@%h", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"]


def _ours_env(side: Side) -> dict[str, str]:
    return dict(ENV, YAML_WORKFLOW_BROKER_URL=side.url, YAML_WORKFLOW_STATE_URL=side.url,
                YAML_WORKFLOW_WORKSPACE_ROOT=str(side.dir / "runs"))


def _wait_ping(app: Any, what: str) -> None:
    deadline = time.monotonic() + 60
    while not (app.control.ping(timeout=0.5) or []):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not answer a ping")


def fleet_rows(rounds: int, tmp: Path, rows: dict[str, Row], which: set[str]) -> None:
    """submit, latency, flatness and memory rows on one worker per side."""
    sys.path.insert(0, str(ROOT))
    ours, bare = Side(tmp, "ours"), Side(tmp, "bare")
    try:
        env = _ours_env(ours)
        os.environ.update({k: env[k] for k in ("YAML_WORKFLOW_BROKER_URL", "YAML_WORKFLOW_STATE_URL",
                                               "YAML_WORKFLOW_WORKSPACE_ROOT")})
        worker = ours.spawn(_worker_argv(sys.executable, "speed-ours"), env, "ours.log")
        bare_env = dict(ENV, SPEED_BARE_URL=bare.url, PYTHONPATH=str(HERE))
        bare.spawn([sys.executable, "-m", "celery", "-A", "bench_speed:bare_app", "worker", "-E", "--pool", "prefork",
                    "-c", "2", "-n", "speed-bare@%h", "--without-mingle", "--without-gossip", "-l", "WARNING"],
                   bare_env, "bare.log")
        global BARE_URL
        BARE_URL = bare.url
        bare_app.conf.broker_url = bare.url
        from yaml_workflow.engine.load import load_workflow
        from yaml_workflow.engine.request import RunRequest
        from yaml_workflow.executors.celery.app import create_app
        from yaml_workflow.executors.celery.follow import wait_for_run
        from yaml_workflow.executors.celery.submit import submit_run

        app = create_app("ywf-speed")
        _wait_ping(app, "the yaml-workflow worker")
        _wait_ping(bare_app, "the bare worker")

        def chain(n: int) -> float:
            from celery import chain as celery_chain

            bare.client.set("speed_bare:done", 0)
            start = time.perf_counter()
            celery_chain(link.si() for _ in range(n)).apply_async()
            deadline = time.monotonic() + 600
            while int(bare.client.get("speed_bare:done") or 0) < n:
                if time.monotonic() > deadline:
                    raise SystemExit("a bare chain did not finish")
                time.sleep(0.002)
            return time.perf_counter() - start

        loaded = {n: load_workflow(workflow(tmp, f"noop{n}", n)) for n in (1, 5, 100, 1000)}

        def submit(n: int) -> float:
            start = time.perf_counter()
            run_id = submit_run(RunRequest(workflow=loaded[n], base_dir=ours.dir / "runs"), app=app)
            result = wait_for_run(run_id, timeout=600, app=app)
            took = time.perf_counter() - start
            if not result.ok:
                raise SystemExit(f"a bench run failed: {result.error}")
            return took

        chain(5), submit(5)  # warm both: imports, connections
        if "latency" in which:
            t = interleave(rounds, {"chain100": lambda: chain(100), "ours100": lambda: submit(100),
                                    "ours1000": lambda: submit(1000)})
            rows["latency"].samples = [o / c for o, c in zip(t["ours100"], t["chain100"], strict=True)]
            rows["latency"].note = (f"{1000 * statistics.median(t['ours100']) / 100:.2f} vs "
                                    f"{1000 * statistics.median(t['chain100']) / 100:.2f} ms/step")
            rows["flat"].samples = [(b / 1000) / (s / 100) for b, s in zip(t["ours1000"], t["ours100"], strict=True)]
        if "submit" in which:
            cli = str(install_ours() / "yaml-workflow")
            one = workflow(tmp, "one-fleet", 1)
            args = [cli, "submit", str(one), "--base-dir", str(ours.dir / "runs")]
            timed(args, tmp, env)
            t = interleave(rounds, {"submit": lambda: timed(args, tmp, env),
                                    "wait": lambda: timed([*args, "--wait"], tmp, env)})
            rows["submit"].samples, rows["submit_wait"].samples = t["submit"], t["wait"]
        if "memory" in which:
            rows["memory"].samples = [_memory(worker.pid, ours, loaded[1], app)]
    finally:
        ours.stop()
        bare.stop()


def _rss_mb(pid: int) -> float:
    """RSS of a process and its children (a prefork worker's pool), in MB."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                pids += [int(c) for c in children]
        except OSError:
            continue
    return total / 1024


def _memory(pid: int, side: Side, one: Any, app: Any) -> float:
    from yaml_workflow.engine.request import RunRequest
    from yaml_workflow.executors.celery.follow import wait_for_run
    from yaml_workflow.executors.celery.submit import submit_run

    def batch(n: int) -> None:
        ids = [submit_run(RunRequest(workflow=one, base_dir=side.dir / "runs"), app=app) for _ in range(n)]
        for run_id in ids:
            if not wait_for_run(run_id, timeout=900, app=app).ok:
                raise SystemExit("a memory-row run failed")

    batch(100)
    first = _rss_mb(pid)
    for _ in range(99):
        batch(100)
    return _rss_mb(pid) - first


def throughput_row(rounds: int, rows: dict[str, Row]) -> None:
    """The shared pair script, run as the issue states it; its median and spread."""
    script = next((p / "shared" / "bench" / "fleet_throughput_pair.py" for p in ROOT.parents
                   if (p / "shared" / "bench" / "fleet_throughput_pair.py").exists()), None)
    if script is None:
        rows["throughput"].note = "shared/bench/fleet_throughput_pair.py not found"
        return
    out = subprocess.run([sys.executable, str(script), "--rounds", str(rounds)], cwd=ROOT, env=ENV,
                         capture_output=True, text=True)
    ratios = [float(m) for m in re.findall(r"ours/bare (\d+\.\d+)\n", out.stdout)]
    if out.returncode != 0 or not ratios:
        rows["throughput"].note = f"pair script failed: {(out.stdout + out.stderr).strip()[-300:]}"
        return
    rows["throughput"].samples = ratios


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default="startup,local,submit,latency,throughput,memory")
    opts = ap.parse_args()
    which = set(opts.only.split(","))
    rows = {
        "throughput": Row("Fleet throughput, 200 runs x 5 noop steps, ours/bare Celery (steps/s)", "x", 1.0, "min"),
        "latency": Row("Fleet per-step latency, 100 noop steps, submit/bare chain", "x", 1.0),
        "flat": Row("Fleet flatness, per-step at 1,000 vs 100 steps", "x", 1.1),
        "submit": Row("`submit` of 1 step (no --wait), whole process", "s", 0.5),
        "submit_wait": Row("`submit --wait` of 1 noop step, whole process", "s", 0.6),
        "run": Row("CLI start-up: `run` of 1 step, ours/0.9.6", "x", 0.8),
        "validate": Row("`validate`, ours/0.9.6", "x", 0.8),
        "help": Row("`--help`, ours/0.9.6", "x", 0.8),
        "status": Row("`status` of a finished local run / our `run`", "x", 1.0),
        "local": Row("Local: 1,000 python_code steps, whole process", "s", 0.5),
        "memory": Row("Worker RSS after 10,000 runs - after first 100", "MB", 50.0),
    }
    tmp = Path(tempfile.mkdtemp(prefix="ywf-speed-"))
    try:
        if "startup" in which:
            startup_rows(opts.rounds, tmp, rows)
        if "local" in which:
            local_rows(opts.rounds, tmp, rows)
        if which & {"submit", "latency", "memory"}:
            fleet_rows(opts.rounds, tmp, rows, which)
        if "throughput" in which:
            throughput_row(opts.rounds, rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"redis {subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2].removeprefix('v=')}; "
          f"{opts.rounds} interleaved rounds, median (spread min-max)\n")
    print("| what | now | spread | target | |")
    print("|---|---|---|---|---|")
    for row in rows.values():
        print(row.line())
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "speed.json").write_text(json.dumps([r.as_dict() for r in rows.values()], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
