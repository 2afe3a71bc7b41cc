"""RunSpec: what one run measures, validated once, before anything starts.

Its fields are the SETTINGS of harness.model.settings, in that order; `build_spec` is the way to
make one, so every value has passed its setting's validation and the rules that join settings.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import Field, asdict, dataclass, make_dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import SpecError
from harness.model import arrivals, hosts
from harness.model.drivers import DRIVERS, driver, fits
from harness.model.pools import POOLS, Pool, pool
from harness.model.settings import MAX_TASKS, MAX_WORKERS, SETTINGS, total_workers
from harness.model.workloads import APP_MIX, BACKGROUND_STRETCH, OWN_TASK, WITH_CPU_FRACTION, Workload, workload

# How long the user's own task may take when it runs alone first, unless TIMEOUT says otherwise.
OWN_TASK_ALONE_LIMIT_S = 300.0
# A mix of the user's calls (APP=) has no time alone: it may take that limit, and a minute more for each wave of
# its slots (TIMEOUT sets another).
MIX_WAVE_LIMIT_S = 60.0
# What a run of a sweep costs beside its tasks, on 2 cores: a warm worker taken (or one started),
# the calibration, the broker's round trips, the summary and figures. Fitted to 6 stored sweeps
# (12-36 runs each): 1.3-2.1 s a run.
RUN_OVERHEAD_S = 2.0


def slots(concurrency: int, workers: int) -> int:
    """Tasks held at once by `workers` workers of `concurrency` slots each (one rule for the spec, the lab and
    a stored run's analysis)."""
    return concurrency * workers


class _RunSpecRules:
    """What follows from a RunSpec's settings; the fields themselves come from SETTINGS."""

    if TYPE_CHECKING:
        # The fields these rules read, as the RunSpec dataclass below has them (a type checker's view only: at run
        # time they come from SETTINGS), and the dataclass marker that lets to_dict call asdict.
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
        pool: str
        workload: str
        app: str | None
        calls: str | None
        concurrency: int
        workers: int
        hosts: str | None
        workers_per_host: int | None
        tasks: int
        duration: float
        cpu_fraction: float | None
        task: str | None
        args: str | None
        kwargs: str | None
        task_path: str | None
        in_order: bool
        seed: int
        routes: str | None
        driver: str | None
        db_query: str | None
        rate: float | None
        arrivals: str | None
        load_time: float | None
        warmup: float | None
        switch_interval: float
        prefetch: int | None
        timeout: float | None
        background_tasks: int

    @property
    def pool_rules(self) -> Pool:
        return pool(self.pool)

    @property
    def workload_rules(self) -> Workload:
        return workload(self.workload)

    @property
    def kind(self) -> str:
        return self.workload_rules.kind

    @property
    def coroutine(self) -> bool:
        """Whether a pool that awaits runs this work as a coroutine on its loop (its coroutine twin, for db and http
        through an async driver), not as a function in its executor."""
        return self.workload_rules.awaited(self.driver)

    @property
    def slots(self) -> int:
        """How many tasks the workers can hold at once: each worker's concurrency, times the workers."""
        return slots(self.concurrency, self.workers)

    @property
    def background_duration(self) -> float:
        return BACKGROUND_STRETCH * self.duration

    def deadline_s(self, task_s: float | None = None) -> float:
        """How long the run may take once tasks are submitted, before it is called stuck.

        Generous, twice the slowest honest schedule plus slack: CPU work one task after another
        (the GIL may serialise it); I/O work in waves of `concurrency` tasks, each wave allowed
        Celery's 2 s green-pool dispatch gap; a switch interval longer than a task can delay each
        task by up to one interval; 10 ms of broker round trips per task. `task_s` is how long one
        task took alone, where that was measured (the user's own task has no nominal duration).
        """
        if self.timeout is not None:
            return self.timeout
        if self.workload_rules.mix:  # the user's calls: nothing known of them, a minute a wave beyond the first limit
            return OWN_TASK_ALONE_LIMIT_S + MIX_WAVE_LIMIT_S * math.ceil(self.tasks / self.slots)
        if self.workload_rules.own and task_s is None:
            return OWN_TASK_ALONE_LIMIT_S
        per_task = (task_s if task_s is not None else self.duration) + min(self.switch_interval, 60.0)
        overlaps = self.kind == "io" and "io" in (self.pool_rules.parallel_kinds or ())  # unknown: one at a time
        waves = math.ceil(self.tasks / self.slots) if overlaps else self.tasks
        background = self.background_tasks * (self.background_duration + min(self.switch_interval, 60.0))
        # An open-loop load submits over LOAD_TIME, then what is queued drains as a batch would.
        return 30.0 + (self.load_time or 0.0) + 2.0 * (waves * (per_task + 2.0) + background) + 0.01 * self.tasks

    def expected_s(self, cores: int) -> float:
        """About how long the run takes, start to figures: a sweep's estimate, not a limit (deadline_s is that).

        The tasks at the best speedup this pool can physically give this work on `cores` cores (serial
        where the lab cannot know it: a custom pool, the user's own task), background tasks beside them,
        and RUN_OVERHEAD_S. The user's own task counts DURATION per task,
        which says nothing of it: `expected_known` is False then.
        """
        speedup = self.pool_rules.ideal_speedup(self.kind, self.concurrency, self.tasks, cores,
                                                cpu_fraction=self.cpu_fraction, workers=self.workers,
                                                coroutine=self.coroutine) or 1.0
        tasks = self.tasks * self.duration / max(speedup, 1.0)
        return RUN_OVERHEAD_S + max(tasks, self.background_tasks * self.background_duration)

    @property
    def expected_known(self) -> bool:
        return not self.workload_rules.own

    @property
    def app_tasks(self) -> list[str]:
        """With APP, the task names TASK gives (comma-separated); none without."""
        return self.task.split(",") if self.app and self.task else []

    @property
    def routed(self) -> dict[str, tuple[str, int]]:
        """ROUTES: each routed task name's (pool, concurrency), in the order given."""
        out = {}
        for entry in (self.routes or "").split(";"):
            if entry:
                task, _, where = entry.partition("=")
                name, _, slots_ = where.rpartition(":")
                out[task] = (name, int(slots_))
        return out

    @property
    def host_names(self) -> list[str]:
        """HOSTS's agents, in order; none for a run on this host alone."""
        return hosts.names(self.hosts)

    def workers_on(self, host: str) -> list[int]:
        """The indexes (1-based) of the workers HOSTS puts on `host`."""
        return [i for i in range(1, self.workers + 1) if self.host_of(i) == host]

    def host_of(self, index: int) -> str | None:
        """The host of worker `index` (1-based); None on this host."""
        return hosts.host_of(self.hosts, self.workers_per_host or 1, index) if self.hosts else None

    @property
    def is_load(self) -> bool:
        """An open-loop run: tasks submitted on a schedule (RATE), not as one batch."""
        return self.rate is not None

    def schedule(self) -> list[float]:
        """An open-loop run's arrivals, seconds from the load's start (harness.model.arrivals)."""
        assert self.rate is not None and self.arrivals is not None and self.load_time is not None
        return arrivals.schedule(arrivals.parse(self.arrivals), self.rate, self.load_time, self.seed)

    @property
    def task_args(self) -> list:
        return json.loads(self.args) if self.args else []

    @property
    def task_kwargs(self) -> dict:
        return json.loads(self.kwargs) if self.kwargs else {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


if TYPE_CHECKING:
    # What a type checker sees: the fields SETTINGS makes below, as build_spec leaves them (a derived default is
    # always filled in). tests/offline/test_model.py checks that this list agrees with SETTINGS.
    @dataclass(frozen=True)
    class RunSpec(_RunSpecRules):
        pool: str
        workload: str
        app: str | None
        calls: str | None
        concurrency: int
        workers: int
        hosts: str | None
        workers_per_host: int | None
        seed: int
        rate: float | None
        arrivals: str | None
        load_time: float | None
        warmup: float | None
        tasks: int
        duration: float
        cpu_fraction: float | None
        task: str | None
        args: str | None
        kwargs: str | None
        task_path: str | None
        in_order: bool
        routes: str | None
        driver: str | None
        db_query: str | None
        switch_interval: float
        prefetch: int | None
        broker: str
        sample_hz: float
        timeout: float | None
        background: str | None
        background_tasks: int
        interpreter: str | None
        gil: str | None
        gil_probe: bool
        events: bool
else:
    RunSpec = make_dataclass("RunSpec", [(s.name, s.type if s.default is not None else s.type | None)
                                         for s in SETTINGS.values()], bases=(_RunSpecRules,), frozen=True)
    RunSpec.__doc__ = "One run's settings (fields: harness.model.settings.SETTINGS); make one with build_spec."
    RunSpec.__module__ = __name__


# Settings that mean something only with APP, and those that mean nothing with it.
APP_ONLY = ("calls", "in_order", "routes")
NOT_WITH_APP = ("cpu_fraction", "background", "gil_probe")


def _app_rules(v: dict[str, Any], raw: dict[str, Any]) -> bool:
    """APP runs the user's own Celery app: TASK names its registered tasks (comma-separated), CALLS replays a
    sample of calls; the workload is the mix. Returns whether the spec is such a run."""
    if v["app"] is None:
        given = [SETTINGS[n].make for n in APP_ONLY if v[n] not in (None, False)]
        if given:
            raise SpecError(f"{', '.join(given)} apply only to your Celery app: give APP=proj too")
        if v["workload"] == APP_MIX:
            raise SpecError(f"workload {APP_MIX!r} runs your Celery app: give APP=proj with TASK or CALLS")
        return False
    if raw.get("workload") not in (None, "", APP_MIX):
        raise SpecError(f"APP runs your app's tasks as the workload; leave WORKLOAD out (it is {raw['workload']!r})")
    wrong = [SETTINGS[n].make for n in NOT_WITH_APP if v[n] not in (None, False)]
    if wrong:
        raise SpecError(f"{', '.join(wrong)} do not apply to your Celery app (APP)")
    in_interpreters = [name for name in [v["pool"], *(e.partition("=")[2].rpartition(":")[0]
                                                       for e in (v["routes"] or "").split(";") if e)]
                       if pool(name).slot == "interpreter"]
    if in_interpreters:
        raise SpecError(f"pool {in_interpreters[0]!r} runs the lab's own functions in subinterpreters, not your app's "
                        "registered tasks: choose another pool for APP")
    if v["task"] is None and v["calls"] is None:
        raise SpecError("APP needs the tasks to run: TASK=its registered names (comma-separated) or CALLS=calls.jsonl")
    if v["task"] is not None and ":" in v["task"]:
        raise SpecError(f"with APP, TASK names registered tasks (such as orders.tasks.render_invoice), not a "
                        f"function: got {v['task']!r}")
    if v["calls"] is not None and (v["args"] is not None or v["kwargs"] is not None):
        raise SpecError("ARGS and KWARGS apply to TASK without CALLS: a calls file gives each call's arguments")
    if v["task"] is not None and v["calls"] is None and "," in v["task"] and (v["args"] not in (None, "[]")
                                                                              or v["kwargs"] not in (None, "{}")):
        raise SpecError("ARGS and KWARGS give one task's arguments: with several TASK names, give CALLS=calls.jsonl")
    if v["calls"] is not None and v["task"] is not None and raw.get("tasks") in (None, ""):
        # TASK picks calls out of the sample: one pass of those calls by default.
        from harness.model.calls import load_calls, sample_size

        size = sample_size([c for c in load_calls(v["calls"]) if c.task in v["task"].split(",")])
        if size:
            v["tasks"] = size
    v["workload"] = APP_MIX
    v["args"] = v["args"] if v["args"] is not None or v["calls"] is not None else "[]"
    v["kwargs"] = v["kwargs"] if v["kwargs"] is not None or v["calls"] is not None else "{}"
    v["task_path"] = v["task_path"] if v["task_path"] is not None else os.getcwd()
    return True


def _own_task_rules(v: dict[str, Any], raw: dict[str, Any]) -> None:
    """TASK makes the user's function the workload; its arguments and path mean nothing without it."""
    if v["task"] is None:
        if v["workload"] == OWN_TASK:
            raise SpecError(f"workload {OWN_TASK!r} runs your own function: give TASK=package.module:function")
        given = [name for name in ("args", "kwargs", "task_path") if v[name] is not None]
        if given:
            raise SpecError(f"{', '.join(SETTINGS[n].make for n in given)} apply only to your own task: "
                            "give TASK=package.module:function too")
        return
    if raw.get("workload") not in (None, "", OWN_TASK):
        raise SpecError(f"TASK runs your own function as the workload; leave WORKLOAD out (it is {raw['workload']!r})")
    if ":" not in v["task"]:
        raise SpecError(f"TASK {v['task']!r} names registered tasks, which need your app: give APP=proj, or TASK as "
                        "package.module:function")
    v["workload"] = OWN_TASK
    v["args"] = v["args"] if v["args"] is not None else "[]"
    v["kwargs"] = v["kwargs"] if v["kwargs"] is not None else "{}"
    v["task_path"] = v["task_path"] if v["task_path"] is not None else os.getcwd()


def _load_rules(v: dict[str, Any], raw: dict[str, Any]) -> None:
    """Open-loop load (RATE, ARRIVALS, LOAD_TIME, WARMUP): a burst's rate, and what cannot go with a schedule."""
    given = [SETTINGS[n].make for n in ("arrivals", "load_time", "warmup") if raw.get(n) not in (None, "")]
    pattern = arrivals.parse(v["arrivals"]) if v["arrivals"] else None
    if pattern is None or (pattern.burst_rate is None and v["rate"] is None):
        if given:
            raise SpecError(f"{' and '.join(given)} shape an open-loop load: give RATE (tasks per second), e.g. make "
                            "load RATE=40 LOAD_TIME=30")
        return
    if pattern.burst_rate is not None:
        if v["rate"] is not None and abs(v["rate"] - pattern.burst_rate) > 0.01 * pattern.burst_rate:
            raise SpecError(f"ARRIVALS={v['arrivals']} is {pattern.burst_rate:g} tasks/s but RATE={v['rate']:g}: "
                            "leave RATE out with a burst pattern")
        v["rate"] = pattern.burst_rate
    if raw.get("tasks") not in (None, ""):
        raise SpecError("TASKS follows from RATE x LOAD_TIME in an open-loop load: leave TASKS out")
    if v["tasks"] < 1:
        raise SpecError(f"RATE={v['rate']:g} over LOAD_TIME={v['load_time']:g} s schedules no task: raise either")
    if v["tasks"] > MAX_TASKS:
        raise SpecError(f"RATE={v['rate']:g} over LOAD_TIME={v['load_time']:g} s is {v['tasks']} tasks, more than "
                        f"{MAX_TASKS} in one run: lower either")
    if v["warmup"] >= v["load_time"] / 2:
        raise SpecError(f"WARMUP={v['warmup']:g} s must be under half of LOAD_TIME={v['load_time']:g} s (the "
                        "latency figures come from what is left)")
    if v["background"] is not None:
        raise SpecError("BACKGROUND runs beside a batch; an open-loop load (RATE) has none")


def _host_rules(v: dict[str, Any], raw: dict[str, Any]) -> None:
    """HOSTS: WORKERS_PER_HOST on each host make the run's WORKERS; what runs only beside the harness is refused."""
    if v["hosts"] is None:
        if raw.get("workers_per_host") not in (None, ""):
            raise SpecError("WORKERS_PER_HOST applies to a run on several hosts: give HOSTS=a,b too (or WORKERS for "
                            "workers on this host)")
        return
    total = total_workers(v)
    if raw.get("workers") not in (None, "") and v["workers"] != total:
        raise SpecError(f"with HOSTS, WORKERS counts every host's workers ({total} here): give WORKERS_PER_HOST for "
                        "the workers on each host, and leave WORKERS out")
    if total > MAX_WORKERS:
        raise SpecError(f"HOSTS x WORKERS_PER_HOST is {total} workers; at most {MAX_WORKERS} take part in one run")
    v["workers"] = total
    rules = workload(v["workload"])
    if rules.needs_echo or rules.needs_db or rules.needs_http:
        raise SpecError(f"WORKLOAD={v['workload']} cannot run on HOSTS: {hosts.NOT_ON_HOSTS}")
    if v["gil_probe"]:
        raise SpecError("the GIL probe watches a worker on this host; HOSTS runs them elsewhere: leave GIL_PROBE out")
    if v["routes"] is not None or v["broker"] != "redis":
        raise SpecError(f"{'ROUTES' if v['routes'] else 'BROKER=' + v['broker']} does not run on HOSTS yet: a run on "
                        "several hosts takes its tasks through the fleet's Redis, to workers of one pool")


def build_spec(**raw: Any) -> RunSpec:
    """Validate raw settings (strings from the CLI or make, values from code or TOML) into a RunSpec."""
    unknown = set(raw) - set(SETTINGS)
    if unknown:
        raise SpecError(f"unknown setting {', '.join(sorted(unknown))}; allowed: {', '.join(SETTINGS)}")
    v: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        v[name] = setting.validate(raw.get(name))
        if v[name] is None and setting.derive is not None:  # from the settings before it
            v[name] = setting.derive(v)
    _load_rules(v, raw)
    if not _app_rules(v, raw):
        _own_task_rules(v, raw)
    if raw.get("cpu_fraction") not in (None, "") and workload(v["workload"]).default_cpu_fraction is None:
        raise SpecError(f"CPU fraction applies to the {' and '.join(WITH_CPU_FRACTION)} workload only, "
                        f"not to {v['workload']!r}")
    rules = pool(v["pool"])
    if v["background"] is None:
        v["background_tasks"] = 0
    elif v["background_tasks"] == 0:
        v["background_tasks"] = 1
    if v["gil_probe"] and not rules.gil_probe:
        names = [name for name, p in POOLS.items() if p.gil_probe]
        why = ("runs every task in one OS thread, so there is no GIL handover to see" if rules.green else
               "runs its coroutines on one OS thread, so there is no GIL handover to see (its loop's lag is "
               "measured on every run instead)" if rules.loop else
               "gives every subinterpreter a GIL of its own" if rules.slot == "interpreter" else
               "is a pool class the lab knows nothing of")
        raise SpecError(f"the GIL probe runs on {', '.join(names[:-1])} and {names[-1]}; {rules.name} {why}")
    kind = workload(v["workload"]).driver_kind
    # A driver given for a workload it does not reach, or a green patch off a green pool (drivers.fits): which one.
    unfit = v["driver"] is not None and not fits(v["driver"], kind, rules.green, rules.awaits)
    if unfit and driver(v["driver"]).kind != kind:
        takes = [n for n, d in DRIVERS.items() if d.kind == kind]
        raise SpecError(f"DRIVER={v['driver']} is a {driver(v['driver']).kind} client; "
                        + (f"the {v['workload']} workload takes {', '.join(takes)}" if takes else
                           f"only the db and http workloads take a DRIVER, not {v['workload']!r}"))
    if raw.get("db_query") not in (None, "") and not workload(v["workload"]).needs_db:
        raise SpecError(f"DB_QUERY is the db workload's query, not {v['workload']!r}'s: give WORKLOAD=db")
    if workload(v["workload"]).needs_db and rules.slot == "interpreter":
        raise SpecError("the db workload's drivers are C extensions that do not load in a subinterpreter: choose "
                        "another pool for WORKLOAD=db")
    if unfit and driver(v["driver"]).coroutine:  # an async client off a pool that awaits
        awaiting = [n for n, p in POOLS.items() if p.awaits]
        raise SpecError(f"DRIVER={v['driver']} is an async client: it runs on a pool that awaits "
                        f"({', '.join(awaiting)}), where each slot keeps its connection on the pool's loop; "
                        f"{rules.name} would need a loop per task. Give POOL={awaiting[0]}, or a sync driver on "
                        f"{rules.name}")
    if unfit:  # the driver's kind fits: its patch is for a green pool's hub
        raise SpecError(f"DRIVER={v['driver']}: {driver(v['driver']).patch} patches the driver for a green pool's hub "
                        f"(gevent, eventlet); on {rules.name} give DRIVER=psycopg2")
    _host_rules(v, raw)
    if v["gil_probe"] and v["workers"] > 1:
        raise SpecError("the GIL probe watches one worker process: give WORKERS=1 with GIL_PROBE")
    return RunSpec(**v)

