"""The lessons of a GIL session: each runs a small live experiment (under a minute on 2 cores)
and returns its runs, a table, figures and a verdict computed by harness.course.verdicts.

Used by the lesson notebooks and by `make lesson N=<n>` alike, so both show the same thing.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.analysis.trust import departure, disturbance_cause, unreliable
from harness.course import verdicts
from harness.errors import ResultsError, SpecError
from harness.lab.interpreters import find_free_threaded, find_subinterpreter_python
from harness.lab.services.redis_broker import RedisBroker
from harness.model.machine import usable_cores
from harness.model.pools import CELERY_POOLS
from harness.model.spec import build_spec
from harness.pipeline import run_bench
from harness.results.records import Role, Summary
from harness.results.run_folder import Run, tasks_of

TITLES = {
    1: "solo runs one task at a time",
    2: "prefork: real parallelism for CPU work, up to the cores",
    3: "threads: no speedup for Python CPU work, but I/O overlaps",
    4: "busy_wait fakes parallelism: measure CPU, not wall time",
    5: "sys.setswitchinterval: who runs next, and when",
    6: "gevent and eventlet: many I/O tasks in one thread",
    7: "C code that releases the GIL runs in parallel on threads",
    8: "the convoy effect: CPU work ruins I/O latency in the same process",
    9: "choosing a pool: a decision table from this machine",
    10: "free-threaded Python: threads in parallel, and contention instead of a GIL",
    11: "subinterpreters: a GIL each, parallel CPU work in one process",
    12: "the green trap: a driver that waits in C blocks gevent",
    13: "should I rewrite my tasks as async? coroutines on one event loop",
}
# Summary fields, a column each in a lesson's table of runs.
TABLE_COLUMNS = ["speedup", "ideal_speedup", "makespan_s", "mean_tasks_running", "mean_cores_used",
                 "max_tasks_running", "queue_wait_p50_s", "second_start_delay_s", "rtt_mean_s", "phantom",
                 "work_inflation", "pss_peak_mib", "loop_lag_max_s"]


@dataclass
class LessonResult:
    number: int
    title: str
    verdict: verdicts.Verdict
    runs: dict[str, Run] = field(default_factory=dict)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    # A reference result (harness.course.notebook): where it was measured, and its saved figures.
    reference: str | None = None
    saved_figures: list[Path] = field(default_factory=list)

    @property
    def cautions(self) -> list[str]:
        """A line for each run that was disturbed (other processes busy, the worker stopped), or during which the
        machine's own speed changed (UNSTEADY):
        the verdict rests on a number that is not reliable."""
        out = []
        for name, run in self.runs.items():
            s = run.summary
            if s is None:
                continue
            if s.disturbed:
                out.append(f"run {name!r} was DISTURBED ({disturbance_cause(s)}); rerun the lesson on a "
                           "quiet "
                           "machine before trusting its verdict")
            elif s.unsteady:
                out.append(f"run {name!r} was UNSTEADY ({s.unsteady_cause}): the machine's own speed "
                           "changed under it; rerun the lesson before trusting its verdict")
        return out

    @property
    def figures(self) -> list[Path]:
        if self.saved_figures:
            return list(self.saved_figures)
        # The asyncio pool's runs add their loop's lag (lesson 13: what a CPU coroutine does to the loop).
        return [run.path / name for run in self.runs.values()
                for name in ("timeline.png", "parallelism.png", *(["loop-lag.png"] if run.spec.pool == "asyncio"
                                                                   else []))]


def _summary(run: Run) -> Summary:
    """A lesson's run, summarized as harness.pipeline.run_bench returns every run it measured."""
    if run.summary is None:
        raise ResultsError(f"{run.path / 'run.json'}: the lesson's run has no summary")
    return run.summary


class _Lab:
    """Runs a lesson's measurements on one broker, into results/lessons/."""

    def __init__(self, broker_url: str, results_dir: Path, log: Callable[[str], None], live=None) -> None:
        self.live = live  # a live view per run (harness.present.live), or None
        self.broker_url = broker_url
        self.results_dir = results_dir
        self.log = log
        self.runs: dict[str, Run] = {}
        self.decision: pd.DataFrame | None = None  # lesson 9's table, in place of the runs table

    def run(self, name: str, **settings) -> Summary:
        """One of the lesson's measurements; measured once more when the lab marks it (disturbed, or unsteady:
        this VM's speed switched between 0.15 s and 0.26 s for the same task within seconds), keeping the
        steadier of the two (harness.analysis.trust.departure). A run still marked is cautioned (`cautions`)."""
        self.log(f"running: {name}")
        run = self._measure(settings)
        if unreliable(run.summary):
            self.log(f"running: {name} once more ({disturbance_cause(run.summary)})")
            run = min((run, self._measure(settings)), key=lambda r: departure(r.summary))
        self.runs[name] = run
        return _summary(run)

    def _measure(self, settings: dict) -> Run:
        return run_bench(build_spec(**settings), results_dir=self.results_dir, redis_url=self.broker_url,
                         log=lambda _line: None, mark_latest=False, live=self.live)

    def table(self) -> pd.DataFrame:
        rows = [{"run": name, "pool": r.spec.pool, "workload": r.spec.workload,
                 "concurrency": r.spec.concurrency, **{k: _summary(r).metric(k) for k in TABLE_COLUMNS}}
                for name, r in self.runs.items()]
        return pd.DataFrame(rows).set_index("run")


CPU = dict(workload="cpu", duration=0.2)


def _lesson1(lab: _Lab, cores: int) -> verdicts.Verdict:
    return verdicts.solo_one_at_a_time(lab.run("solo, 4 sleeps", pool="solo", workload="io_sleep", concurrency=4,
                                               tasks=4, duration=0.2))


def _lesson2(lab: _Lab, cores: int) -> verdicts.Verdict:
    at = lab.run(f"prefork, concurrency {cores}", pool="prefork", concurrency=cores, tasks=4 * cores, **CPU)
    above = lab.run(f"prefork, concurrency {2 * cores}", pool="prefork", concurrency=2 * cores, tasks=4 * cores, **CPU)
    return verdicts.prefork_scales_to_cores(at, above, cores)


def _lesson3(lab: _Lab, cores: int) -> verdicts.Verdict:
    cpu = lab.run("threads, CPU", pool="threads", concurrency=2, tasks=4, **CPU)
    io = lab.run("threads, I/O", pool="threads", workload="io_sleep", concurrency=4, tasks=8, duration=0.2)
    return verdicts.threads_cpu_versus_io(cpu, io, 4)


def _lesson4(lab: _Lab, cores: int) -> verdicts.Verdict:
    busy = lab.run("threads, busy_wait", pool="threads", workload="busy_wait", concurrency=2, tasks=2, duration=0.5)
    cpu = lab.run("threads, cpu", pool="threads", workload="cpu", concurrency=2, tasks=2, duration=0.5)
    return verdicts.busy_wait_is_phantom(busy, cpu)


def _lesson5(lab: _Lab, cores: int) -> verdicts.Verdict:
    short, long, duration = 0.005, 1.0, 1.0
    s = lab.run(f"threads, switch {short:g} s", pool="threads", workload="busy_wait", concurrency=2, tasks=2,
                duration=duration, switch_interval=short)
    lo = lab.run(f"threads, switch {long:g} s", pool="threads", workload="busy_wait", concurrency=2, tasks=2,
                 duration=duration, switch_interval=long)
    return verdicts.switch_interval_delays_second_task(s, lo, short, long, duration)


def _lesson6(lab: _Lab, cores: int) -> verdicts.Verdict:
    io = lab.run("gevent, 20 sleeps", pool="gevent", workload="io_sleep", concurrency=20, tasks=20, duration=0.3)
    blocked = lab.run("gevent, sleeps behind a CPU task", pool="gevent", workload="io_sleep", concurrency=5,
                      tasks=4, duration=0.3, background="cpu", background_tasks=1)
    gap = lab.run("gevent, prefetch 1", pool="gevent", workload="io_sleep", concurrency=2, tasks=4, duration=0.2,
                  prefetch=1)
    # The wait is judged against how long the CPU task ran in this run, not the duration it was sized for: a
    # rate reused from a slower second makes it shorter (this VM runs the same work at two speeds 1.7x apart).
    t = lab.runs["gevent, sleeps behind a CPU task"].tasks
    background = tasks_of(t, Role.BACKGROUND)
    cpu_task_s = float((background["finished"] - background["started"]).max())
    return verdicts.green_pools_overlap_io_but_cpu_blocks(io, blocked, gap, 20, cpu_task_s)


def _lesson7(lab: _Lab, cores: int) -> verdicts.Verdict:
    return verdicts.gil_release_runs_in_parallel(
        lab.run("threads, hashlib", pool="threads", workload="gil_release", concurrency=2, tasks=4, duration=0.3),
        cores)


def _lesson8(lab: _Lab, cores: int) -> verdicts.Verdict:
    io = dict(workload="io_net", concurrency=3, tasks=2, duration=0.6)
    alone = lab.run("threads, I/O alone", pool="threads", **io)
    beside = lab.run("threads, I/O beside CPU", pool="threads", background="cpu", **io)
    prefork = lab.run("prefork, I/O beside CPU", pool="prefork", background="cpu", **io)
    return verdicts.convoy_effect(alone, beside, prefork)


def _lesson9(lab: _Lab, cores: int) -> verdicts.Verdict:
    rows = []
    for workload in ("cpu", "io_sleep", "gil_release"):
        for pool in CELERY_POOLS:
            s = lab.run(f"{pool}, {workload}", pool=pool, workload=workload, concurrency=2, tasks=4, duration=0.15)
            rows.append({"pool": pool, "workload": workload, "speedup": s.speedup,
                         "mean_cores_used": s.mean_cores_used})
    lab.decision = verdicts.decision_table(pd.DataFrame(rows))
    return verdicts.choosing_a_pool(lab.decision, cores)


def _lesson10(lab: _Lab, cores: int) -> verdicts.Verdict:
    python = find_free_threaded()
    if python is None:
        raise SpecError("lesson 10 needs a free-threaded Python: install one (uv python install 3.14t, or "
                        "pyenv install 3.13t) or name it in LAB_FREETHREADED_PYTHON")
    work = dict(pool="threads", concurrency=max(2, cores), tasks=2 * max(2, cores), duration=0.25, interpreter=python)
    free = lab.run("threads, cpu, no GIL", workload="cpu", **work)
    gil_on = lab.run("threads, cpu, GIL forced on", workload="cpu", gil="on", **work)
    shared = lab.run("threads, cpu_shared, no GIL", workload="cpu_shared", **work)
    return verdicts.free_threading(free, gil_on, shared, cores)


def _lesson11(lab: _Lab, cores: int) -> verdicts.Verdict:
    python = find_subinterpreter_python()
    if python is None:
        raise SpecError("lesson 11 needs CPython 3.13 or newer for its workers: install one (pyenv install 3.13, "
                        "uv python install 3.14) or name it in LAB_INTERPRETERS_PYTHON")
    work = dict(workload="cpu", concurrency=2, tasks=8, duration=0.2, interpreter=python)
    threads = lab.run("threads, cpu", pool="threads", **work)
    interpreters = lab.run("interpreters, cpu", pool="interpreters", **work)
    prefork = lab.run("prefork, cpu", pool="prefork", **work)
    processes = int(lab.runs["interpreters, cpu"].foreground["pid"].nunique())
    return verdicts.subinterpreters_in_parallel(interpreters, threads, prefork, processes, cores)


def _lesson12(lab: _Lab, cores: int) -> verdicts.Verdict:
    from harness.lab.services.postgres import check_available

    check_available()  # PG_URL's server, or one to start; else one line saying how to get one
    work = dict(workload="db", concurrency=GREEN_TRAP_SLOTS, tasks=2 * GREEN_TRAP_SLOTS, duration=0.25)
    trapped = lab.run("gevent, psycopg2", pool="gevent", driver="psycopg2", **work)
    patched = lab.run("gevent, psycopg2 + psycogreen", pool="gevent", driver="psycopg2+psycogreen", **work)
    threads = lab.run("threads, psycopg2", pool="threads", driver="psycopg2", **work)
    return verdicts.green_trap(trapped, patched, threads, GREEN_TRAP_SLOTS)


# Lesson 12's slots: enough that overlapping the waits (8x) and not (1x) are far apart.
GREEN_TRAP_SLOTS = 8


def _lesson13(lab: _Lab, cores: int) -> verdicts.Verdict:
    """The same sleeps in flight on the asyncio pool (awaited), gevent and threads; then CPU coroutines on the loop."""
    work = dict(workload="io_sleep", concurrency=ASYNC_SLOTS, tasks=2 * ASYNC_SLOTS, duration=0.5)
    aio = lab.run("asyncio, io_sleep", pool="asyncio", **work)
    gevent = lab.run("gevent, io_sleep", pool="gevent", **work)
    threads = lab.run("threads, io_sleep", pool="threads", **work)
    cpu = lab.run("asyncio, cpu", pool="asyncio", workload="cpu", concurrency=4, tasks=4, duration=0.2)
    return verdicts.rewrite_as_async(aio, gevent, threads, cpu, ASYNC_SLOTS)


# Lesson 13's tasks in flight: enough that a thread each costs measurable memory, few enough to send in a moment.
ASYNC_SLOTS = 300

LESSONS = {1: _lesson1, 2: _lesson2, 3: _lesson3, 4: _lesson4, 5: _lesson5, 6: _lesson6, 7: _lesson7,
           8: _lesson8, 9: _lesson9, 10: _lesson10, 11: _lesson11, 12: _lesson12, 13: _lesson13}


def run_lesson(number: int, results_dir: str | Path = "results/lessons", redis_url: str | None = None,
               log: Callable[[str], None] = print, live=None) -> LessonResult:
    """Run lesson `number` live and return its runs, table and verdict; `live` makes a live view per run
    (harness.present.live.terminal or .notebook)."""
    if number not in LESSONS:
        raise ValueError(f"unknown lesson {number}; lessons are 1 to {len(LESSONS)}")
    with RedisBroker(redis_url) as broker:  # one Redis for all of the lesson's runs
        assert broker.url is not None  # a started broker has its URL (RedisBroker.start)
        lab = _Lab(broker.url, Path(results_dir), log, live)
        verdict = LESSONS[number](lab, usable_cores())
    table = lab.decision if lab.decision is not None else lab.table()
    return LessonResult(number, TITLES[number], verdict, lab.runs, table)
