"""The workloads: every rule about a workload lives in its record here.

Adding a workload is one entry in WORKLOADS plus its function in workloads/functions.py. The
worker registers one Celery task per record, named after it; the harness calibrates, builds task
arguments and reads results from the same record.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workloads import functions

# What kind of work a workload is; the ideal speedup (harness.model.pools) and the wording of the
# summary follow from it.
KINDS = {
    "python-cpu": "pure-Python CPU work: needs the GIL",
    "c-cpu": "C code that releases the GIL",
    "io": "waiting on I/O",
    "mixed": "CPU bursts that need the GIL between blocking waits",
    "own": "your own task: what it does is measured, not assumed",
}
# Kinds whose tasks wait on purpose part of their time alone (alone_cpu_share says how much): each wants its share
# of a core while it runs, and the summary says when the tasks got fewer cores than their shares add up to.
PART_CPU_KINDS = ("mixed", "own")
# A mixed task is cut into rounds of this length: a burst of CPU, then a wait.
MIXED_ROUND_S = 0.02


@dataclass(frozen=True)
class Calibration:
    """How much fixed work takes a given time alone: `unit`s of work, timed on a probe of `probe_units`.

    `timed` names the function in workloads.functions that is timed, when it is not the workload's
    own (mixed is timed on cpu's loop: its waits take what they take).
    """

    unit: str
    probe_units: int
    extra: dict[str, Any] = field(default_factory=dict)
    timed: str | None = None


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str
    # None for the user's own task: the worker imports it (workloads.own).
    function: Callable[..., Any] | None
    summary: str
    # Fixed work takes the same CPU however the GIL slices it: its size is calibrated, and a
    # task alone takes its own CPU time. Otherwise a task lasts its nominal duration.
    calibration: Calibration | None = None
    # Talks to the lab's echo service on 127.0.0.1 (its task arguments say where).
    needs_echo: bool = False
    # May run beside the measured tasks (e.g. CPU work next to io_net for the convoy effect).
    background_ok: bool = False
    # The function returns a dict of extra fields for its task's record (io_net: its round trips).
    reports_fields: bool = False
    # Its tasks touch objects they share (cpu_shared: contention on a free-threaded build is its lesson).
    # The user's own task may: nothing is known of it.
    shares_objects: bool = False
    # Finishes on the wall clock whether or not it got the CPU (busy_wait, the tutorials' spin): its "speedup"
    # beside others is phantom parallelism, said as such (harness.analysis.summary) and drawn dashed.
    wall_clock: bool = False
    # The share of a task's time alone that is CPU, when the workload takes one (CPU_FRACTION): its default.
    default_cpu_fraction: float | None = None
    # Waits on the lab's private PostgreSQL through a driver (DRIVER=, harness.model.drivers): the run starts one.
    needs_db: bool = False
    # Waits on the lab's HTTP service through a client (DRIVER=): the run starts it.
    needs_http: bool = False
    # Replays a mix of the user's calls (APP=, CALLS=): no one task is the work, so nothing is timed alone, and
    # pools are compared by tasks/s on the same seeded replay, per task name and for the mix.
    mix: bool = False
    # The same work as a coroutine function (async def), run instead of `function` by a pool that awaits (asyncio):
    # its waits awaited, its CPU on the loop. None: the pool runs `function` in its loop's default executor.
    coroutine: Callable[..., Any] | None = None

    def awaited(self, driver_name: str | None = None) -> bool:
        """Whether a pool that awaits runs this workload as its coroutine twin: one it has, and for the db and http
        workloads only through an async driver (DRIVER=asyncpg, aiohttp, ...; a sync one runs in the executor)."""
        if self.coroutine is None:
            return False
        if self.driver_kind is None:
            return True
        from harness.model.drivers import DEFAULT_DRIVERS, driver

        return driver(driver_name or DEFAULT_DRIVERS[self.driver_kind]).coroutine

    def runs(self, awaits: bool, driver_name: str | None = None) -> Callable[..., Any] | None:
        """The function a worker registers for this workload: its coroutine twin on a pool that awaits it."""
        return self.coroutine if awaits and self.awaited(driver_name) else self.function

    @property
    def own(self) -> bool:
        """The user's own task (TASK=package.module:function), with the user's arguments."""
        return self.kind == "own"

    @property
    def driver_kind(self) -> str | None:
        """What DRIVER chooses for this workload: a database driver, an HTTP client, or nothing."""
        return "db" if self.needs_db else "http" if self.needs_http else None

    @property
    def server(self) -> str | None:
        """The server of the run's own that its tasks wait on, as messages name it."""
        return "PostgreSQL" if self.needs_db else "HTTP service" if self.needs_http else None

    @property
    def may_share(self) -> bool:
        """Whether tasks of this workload may contend for an object they share: so their work inflation may
        be contention, not only the machine's speed."""
        return self.shares_objects or self.own

    @property
    def fixed_work(self) -> bool:
        """The same work however the tasks are scheduled: calibrated work, or the user's own task
        (assumed to do the same work on every call with the same arguments)."""
        return self.calibration is not None or (self.own and not self.mix)

    def task_args(self, duration: float, calibration: dict, echo: tuple[str, int] | None,
                  cpu_fraction: float | None = None, own_args: list | None = None) -> list:
        """The Celery task's arguments: the calibrated amount of work, or a duration (and where to talk),
        or for the user's own task the arguments the user gave."""
        if self.own:
            return list(own_args or [])
        if self.default_cpu_fraction is not None:
            cpu_fraction = self.default_cpu_fraction if cpu_fraction is None else cpu_fraction
            rounds = max(1, round(duration / MIXED_ROUND_S))
            burst = round(calibration["iterations_per_s"] * cpu_fraction * duration / rounds)
            return [burst, (1 - cpu_fraction) * duration / rounds, rounds]
        if self.calibration is not None:
            return [calibration[self.calibration.unit]]
        if self.needs_db and calibration.get("query") == "scan":  # DB_QUERY=scan: the scans sized on the server
            return [duration, 0, "scan", calibration["scans"]]
        if self.needs_echo:
            assert echo is not None, f"{self.name} talks to the echo service: its address is needed"
            host, port = echo
            return [duration, host, port]
        return [duration]


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("busy_wait", "python-cpu", functions.busy_wait,
             "the tutorials' wall-clock spin: finishes on time whether or not it got the CPU", background_ok=True,
             wall_clock=True),
    Workload("cpu", "python-cpu", functions.cpu, "a fixed amount of pure-Python arithmetic",
             calibration=Calibration("iterations", 100_000), background_ok=True, coroutine=functions.cpu_async),
    Workload("cpu_shared", "python-cpu", functions.cpu_shared,
             "cpu's work through objects all threads share: contention on a free-threaded build",
             calibration=Calibration("iterations", 100_000), shares_objects=True),
    Workload("io_sleep", "io", functions.io_sleep, "time.sleep(duration) (on the asyncio pool: await asyncio.sleep)",
             background_ok=True, coroutine=functions.io_sleep_async),
    Workload("io_net", "io", functions.io_net, "blocking round trips to a slow echo service on 127.0.0.1 (on the "
             "asyncio pool: asyncio streams)", needs_echo=True, reports_fields=True, coroutine=functions.io_net_async),
    Workload("gil_release", "c-cpu", functions.gil_release, "hashlib.sha256 over a 4 MiB buffer, GIL released",
             calibration=Calibration("rounds", 4, {"chunk_bytes": functions.GIL_RELEASE_CHUNK}), background_ok=True),
    Workload("mixed", "mixed", functions.mixed, "CPU bursts (cpu's loop) between sleeps, CPU_FRACTION of its time "
             "alone is CPU", calibration=Calibration("iterations", 100_000, timed="cpu"), default_cpu_fraction=0.5,
             coroutine=functions.mixed_async),
    Workload("db", "io", functions.db, "a query that waits on the lab's PostgreSQL (pg_sleep of DURATION) and an "
             "indexed read, or with DB_QUERY=scan scans that cost the server DURATION of CPU, through DRIVER, on a "
             "connection per slot", needs_db=True, coroutine=functions.db_async),
    Workload("http", "io", functions.http, "a GET of the lab's HTTP service that answers after DURATION, through "
             "DRIVER, on a connection per slot", needs_http=True, coroutine=functions.http_async),
    Workload("task", "own", None, "your own function: TASK=package.module:function, ARGS, KWARGS"),
    Workload("app", "own", None, "your Celery app's registered tasks, run by its own worker: APP=proj with TASK=names "
             "or CALLS=calls.jsonl", mix=True),
)}
WORKLOAD_NAMES = tuple(WORKLOADS)
# The db workload's queries (DB_QUERY): a wait on the server, or scans that cost its CPU.
DB_QUERIES = ("wait", "scan")
# The workload that runs the user's own function (TASK=...), the one that runs the user's app (APP=...), and those
# that take a CPU_FRACTION.
OWN_TASK = next(name for name, w in WORKLOADS.items() if w.own and not w.mix)
APP_MIX = next(name for name, w in WORKLOADS.items() if w.mix)
WITH_CPU_FRACTION = tuple(name for name, w in WORKLOADS.items() if w.default_cpu_fraction is not None)
BACKGROUND_WORKLOADS = tuple(name for name, w in WORKLOADS.items() if w.background_ok)
# Background tasks last this many times the measured tasks' duration, to cover them.
BACKGROUND_STRETCH = 1.5


def workload(name: str) -> Workload:
    return WORKLOADS[name]
