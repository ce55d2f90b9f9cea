"""Every Redis key of the project, named in one place.

``P`` is the key prefix (``YAML_WORKFLOW_KEY_PREFIX``, default ``ywf``)::

    P:runs                      sorted set  run ids by start time (``runs``, ``clean``)
    P:active                    set    fleet runs that may still be running (the stall sweep)
    P:sweep:lock                string the worker whose turn it is to sweep for stalled runs
    P:run:<id>                  hash   run fields: name, status, params, workflow, plan...
                                       plus ``fingerprint:<step>``, ``retry:<step>``, ``flag:<name>``
    P:run:<id>:steps            hash   ``<step>.<field>`` -> JSON (the step's status record)
    P:run:<id>:outputs          hash   step -> result JSON
    P:run:<id>:vars             hash   variable -> JSON
    P:run:<id>:history          list   history entries (JSON)
    P:run:<id>:lease            string the lease of a local run (JSON), kept past expiry
    P:run:<id>:fleet            hash   the fleet's bookkeeping: status, remaining, gen, and per
                                       step done:, join:, next:, skip:, sent:, attempt:,
                                       not_before:, started:, fanout:, claim: (its holder)
    P:run:<id>:spec             string the compiled run (workflow, plan, args, env...)
    P:run:<id>:ns               hash   step -> its ``steps.X`` namespace entry (JSON)
    P:run:<id>:events           stream one entry per finished step, progress, and the end
    P:run:<id>:claim:<step>     string the live claim of a running step (token, TTL)
    P:run:<id>:batch:<step>:<n> hash   fan-out n of a batch step: plan, item:<i>, chunkdone:<c>
    P:run:<id>:resume           string the lock of a `submit --resume` in progress
    P:idem:<key>                string the run an idempotency key is bound to (JSON, TTL)
    P:schedules                 hash   schedule name -> its definition (workflow, schedule, source)
    P:schedule:<name>           hash   its state: paused, cursor (last tick decided), last tick/run
    P:schedule:<name>:log       zset   what each tick became (JSON: run, skipped, missed), by tick time
    P:schedule:<name>:active    set    ids of its runs that may still be running (max_active_runs)
    P:schedule:<name>:fire      string the lock that makes one fire of the schedule at a time
    P:beat:lock                 string the lock of the active `yaml-workflow beat` (JSON, TTL)

Nothing else builds a key string: callers ask :class:`Keyspace` and :class:`RunKeys`.
"""

from __future__ import annotations

import re

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """``text`` as a Redis SCAN MATCH pattern that matches only itself."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class RunKeys:
    """The keys of one run."""

    def __init__(self, prefix: str, run_id: str) -> None:
        self.base = f"{prefix}:run:{run_id}"
        self.run = self.base
        self.steps = f"{self.base}:steps"
        self.outputs = f"{self.base}:outputs"
        self.vars = f"{self.base}:vars"
        self.history = f"{self.base}:history"
        self.lease = f"{self.base}:lease"
        self.fleet = f"{self.base}:fleet"
        self.spec = f"{self.base}:spec"
        self.ns = f"{self.base}:ns"
        self.events = f"{self.base}:events"
        self.resume = f"{self.base}:resume"

    @property
    def data(self) -> tuple[str, ...]:
        """Every key holding the run's state (not its lease, not the fleet's own)."""
        return (self.run, self.steps, self.outputs, self.vars, self.history)

    @property
    def fleet_data(self) -> tuple[str, ...]:
        """The fleet's keys of the run that expire with it once it finished."""
        return (self.fleet, self.spec, self.ns, self.events)

    def claim(self, name: str) -> str:
        """The claim of one step (or ``step#fanout#chunk``)."""
        return f"{self.base}:claim:{name}"

    def batch(self, step: str, fanout: int) -> str:
        """The hash of one fan-out of a batch step."""
        return f"{self.base}:batch:{step}:{fanout}"

    def progress_gate(self, step: str, fanout: int) -> str:
        """The key that lets one chunk of a fan-out record progress per interval."""
        return f"{self.batch(step, fanout)}:progress-gate"

    @property
    def pattern(self) -> str:
        """A SCAN pattern matching every key of the run (``clean`` only).  Glob characters
        in the id are escaped: a forged id such as ``*`` matches no other run's keys."""
        return f"{glob_escape(self.base)}:*"


class ScheduleKeys:
    """The keys of one schedule."""

    def __init__(self, prefix: str, name: str) -> None:
        self.state = f"{prefix}:schedule:{name}"
        self.log = f"{self.state}:log"
        self.active = f"{self.state}:active"
        self.fire_lock = f"{self.state}:fire"

    @property
    def all(self) -> tuple[str, ...]:
        """Every key of the schedule (``schedule remove``)."""
        return (self.state, self.log, self.active, self.fire_lock)


class Keyspace:
    """The keys of one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.runs_index = f"{prefix}:runs"

    def run(self, run_id: str) -> RunKeys:
        """The keys of run ``run_id``."""
        return RunKeys(self.prefix, run_id)

    @property
    def active_runs(self) -> str:
        """The set of fleet runs that may still be running (what the stall sweep reads)."""
        return f"{self.prefix}:active"

    @property
    def sweep_lock(self) -> str:
        """Which worker sweeps for stalled runs now (one at a time)."""
        return f"{self.prefix}:sweep:lock"

    @property
    def schedules(self) -> str:
        """The hash of schedule definitions."""
        return f"{self.prefix}:schedules"

    @property
    def beat_lock(self) -> str:
        """The lock that one `yaml-workflow beat` among its replicas holds."""
        return f"{self.prefix}:beat:lock"

    def schedule(self, name: str) -> ScheduleKeys:
        """The keys of schedule ``name``."""
        return ScheduleKeys(self.prefix, name)

    def idempotency(self, key: str) -> str:
        """The binding of an idempotency key (``submit --idempotency-key``, schedules' ticks)."""
        return f"{self.prefix}:idem:{key}"
