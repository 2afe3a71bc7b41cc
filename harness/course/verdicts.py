"""Lesson verdicts: a prediction, the measured value, and whether it held. Pure functions on run summaries.

Each takes the `Summary` of the lesson's runs (see harness.analysis.summary.summarize) and decides
from the numbers alone; notebooks and `make lesson` only print what these return. Thresholds are
margins for a noisy 2-core machine, the same spirit as the tests' physics assertions.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.analysis.trust import INFLATION_LIMIT
from harness.results.records import Summary


@dataclass(frozen=True)
class Verdict:
    lesson: int
    claim: str
    prediction: str
    measured: str
    held: bool

    def line(self) -> str:
        return (f"verdict: {'HELD' if self.held else 'DID NOT HOLD'} - {self.claim}. "
                f"Predicted {self.prediction}; measured {self.measured}.")


def _measured(value: float | None) -> float:
    """A figure the verdict reads that the summary may leave unmeasured (None): every lesson's runs measure it,
    and a run that did not has no verdict (a TypeError, as comparing None would raise)."""
    if value is None:
        raise TypeError("the lesson's run did not measure a figure its verdict needs")
    return value


def solo_one_at_a_time(solo: Summary) -> Verdict:
    return Verdict(1, "solo runs one task at a time", "at most 1 task running at any moment",
                   f"at most {solo.max_tasks_running} running, speedup {solo.speedup:.2f}x",
                   solo.max_tasks_running == 1 and solo.speedup < 1.2)


def prefork_scales_to_cores(at_cores: Summary, above: Summary, cores: int) -> Verdict:
    expected = 0.65 * cores if cores > 1 else 0.8
    # Above the cores the limit is the cores, not the speedup at the cores: with short tasks, more processes than
    # cores hide prefork's dispatch gaps (measured here: 1.48x at 2, 1.81x at 4 on 2 cores, both runs steady), and
    # a second run is a second moment of a drifting machine.
    limit = 1.1 * cores
    held = at_cores.speedup >= expected and above.speedup <= limit
    return Verdict(2, "prefork gives real parallelism for CPU work up to the cores, and no more above them",
                   f"speedup >= {expected:.2f}x at concurrency {cores}, at most the {cores} cores ({limit:.1f}x) at "
                   f"{2 * cores}",
                   f"{at_cores.speedup:.2f}x on {at_cores.mean_cores_used:.2f} cores at concurrency {cores}, "
                   f"{above.speedup:.2f}x at {2 * cores}", held)


def threads_cpu_versus_io(cpu: Summary, io: Summary, io_concurrency: int) -> Verdict:
    held = cpu.speedup < 1.25 and io.speedup > 0.6 * io_concurrency
    return Verdict(3, "threads do not speed up pure-Python CPU work, but overlap I/O",
                   f"CPU speedup < 1.25x; I/O speedup > {0.6 * io_concurrency:.1f}x",
                   f"CPU {cpu.speedup:.2f}x on {cpu.mean_cores_used:.2f} cores; I/O {io.speedup:.2f}x "
                   f"with {io.max_tasks_running} at once", held)


def busy_wait_is_phantom(busy: Summary, cpu: Summary) -> Verdict:
    held = busy.phantom and busy.speedup > 1.5 and busy.mean_cores_used < 1.25 and cpu.speedup < 1.25
    return Verdict(4, "a wall-clock busy_wait fakes parallelism on threads: measure CPU, not wall time",
                   "busy_wait 'speeds up' in wall time on about one core; fixed work (cpu) does not",
                   f"busy_wait {busy.speedup:.2f}x on {busy.mean_cores_used:.2f} cores "
                   f"(phantom: {busy.phantom}); cpu {cpu.speedup:.2f}x", held)


def switch_interval_delays_second_task(short: Summary, long: Summary, short_s: float, long_s: float,
                                       duration: float) -> Verdict:
    floor = 0.5 * min(long_s, duration)
    short_delay, long_delay = _measured(short.second_start_delay_s), _measured(long.second_start_delay_s)
    held = long_delay > floor and short_delay < 0.1
    return Verdict(5, "the switch interval decides when a second CPU thread gets to start",
                   f"second task starts within 0.1 s at {short_s:g} s, after > {floor:.2f} s at {long_s:g} s",
                   f"{short_delay:.3f} s at {short_s:g} s, {long_delay:.3f} s at {long_s:g} s", held)


def green_pools_overlap_io_but_cpu_blocks(io: Summary, with_cpu: Summary, gap: Summary, concurrency: int,
                                          cpu_task_s: float) -> Verdict:
    """`cpu_task_s`: how long the CPU task ran (measured), which the I/O tasks behind it wait for."""
    overlap = io.speedup > 0.5 * concurrency
    blocked = with_cpu.queue_wait_p50_s > 0.7 * cpu_task_s
    dispatch_gap = gap.queue_wait_p95_s > 1.5
    return Verdict(6, "gevent overlaps many I/O tasks in one thread; a CPU task blocks them all; "
                      "prefetch 1 adds a 2 s dispatch gap",
                   f"I/O speedup > {0.5 * concurrency:.0f}x; I/O tasks wait > {0.7 * cpu_task_s:.2f} s behind a "
                   f"CPU task; a task waits > 1.5 s at prefetch 1",
                   f"{io.speedup:.1f}x at concurrency {concurrency}; median wait behind CPU "
                   f"{with_cpu.queue_wait_p50_s:.2f} s; p95 wait at prefetch 1 {gap.queue_wait_p95_s:.2f} s",
                   overlap and blocked and dispatch_gap)


def gil_release_runs_in_parallel(threads: Summary, cores: int) -> Verdict:
    expected = 1.3 if cores > 1 else 0.8
    return Verdict(7, "C code that releases the GIL (hashlib) runs in parallel on threads",
                   f"more than {expected} cores used", f"{threads.mean_cores_used:.2f} cores, "
                   f"speedup {threads.speedup:.2f}x", threads.mean_cores_used > expected)


def convoy_effect(alone: Summary, beside_cpu: Summary, prefork_beside_cpu: Summary) -> Verdict:
    rtt = [_measured(s.rtt_mean_s) for s in (alone, beside_cpu, prefork_beside_cpu)]
    held = rtt[1] > 1.5 * rtt[0] and rtt[2] < 1.3 * rtt[0]
    return Verdict(8, "a CPU task in the same process ruins the latency of I/O tasks (the convoy effect)",
                   "round trips > 1.5x slower beside a CPU thread; not slower beside a CPU process (prefork)",
                   f"{rtt[0] * 1000:.1f} ms alone, {rtt[1] * 1000:.1f} ms beside CPU "
                   f"on threads, {rtt[2] * 1000:.1f} ms on prefork", held)


def free_threading(free: Summary, gil_on: Summary, shared: Summary, cores: int) -> Verdict:
    expected = 1.4 if cores > 1 else 0.8
    free_inflation, shared_inflation = _measured(free.work_inflation), _measured(shared.work_inflation)
    held = (free.speedup >= expected and free_inflation < INFLATION_LIMIT and gil_on.speedup < 1.25
            and shared_inflation > INFLATION_LIMIT)
    return Verdict(10, "without the GIL threads run Python CPU work in parallel, but objects they share still "
                       "contend",
                   f"threads >= {expected}x on cpu with no work inflation; < 1.25x with the GIL forced on; "
                   f"cpu_shared's tasks each burn > {INFLATION_LIMIT:g}x their CPU alone",
                   f"cpu {free.speedup:.2f}x (inflation {free_inflation:.2f}); "
                   f"GIL on {gil_on.speedup:.2f}x; "
                   f"cpu_shared {shared.speedup:.2f}x on {shared.mean_cores_used:.2f} cores (inflation "
                   f"{shared_inflation:.2f})", held)


def subinterpreters_in_parallel(interpreters: Summary, threads: Summary, prefork: Summary, processes: int,
                                cores: int) -> Verdict:
    """Lesson 11: the interpreters pool runs CPU work in parallel in one process; threads in one process do not."""
    expected = 1.4 if cores > 1 else 0.8
    held = interpreters.speedup >= expected and processes == 1 and threads.speedup < 1.25
    memory = [_measured(s.pss_peak_mib) for s in (interpreters, prefork)]
    return Verdict(11, "subinterpreters, each with its own GIL, run Python CPU work in parallel inside one process",
                   f"the interpreters pool >= {expected}x on cpu in a single worker process; threads < 1.25x",
                   f"interpreters {interpreters.speedup:.2f}x on {interpreters.mean_cores_used:.2f} cores in "
                   f"{processes} process(es), {memory[0]:.0f} MiB; threads "
                   f"{threads.speedup:.2f}x; prefork {prefork.speedup:.2f}x in {memory[1]:.0f} MiB",
                   held)


def green_trap(trapped: Summary, patched: Summary, threads: Summary, slots: int) -> Verdict:
    """Lesson 12: gevent overlaps a database wait only where the driver yields to its hub. psycopg2 waits in C
    (libpq) and blocks the one OS thread every greenlet runs in; psycogreen makes it wait through the hub; threads
    overlap psycopg2's waits as they are (it releases the GIL while it waits). The lab says SERIAL, naming the
    driver, from the measurements."""
    said = any(note.startswith("SERIAL:") and "psycopg2" in note for note in trapped.notes)
    overlaps = 0.6 * slots
    held = (trapped.speedup < 1.5 and trapped.max_tasks_running <= 1 and said and patched.speedup >= overlaps
            and threads.speedup >= overlaps)
    return Verdict(12, "a green pool overlaps a query's wait only where the driver yields to its hub: psycopg2 alone "
                       "blocks gevent, psycogreen unblocks it, and threads never needed it",
                   f"gevent with psycopg2 about 1x, one task at a time, said SERIAL; with psycogreen and on threads "
                   f">= {overlaps:.1f}x of {slots} slots",
                   f"gevent + psycopg2 {trapped.speedup:.2f}x (at most {trapped.max_tasks_running} at once"
                   f"{', said SERIAL' if said else ', NOT said'}); gevent + psycogreen {patched.speedup:.2f}x; "
                   f"threads + psycopg2 {threads.speedup:.2f}x", held)


def rewrite_as_async(aio: Summary, gevent: Summary, threads: Summary, cpu: Summary, slots: int) -> Verdict:
    """Lesson 13: coroutines pay for waiting, not for computing. On I/O the asyncio pool overlaps the waits as well as
    gevent (within 10 % of its speedup, on the same settings) in less memory than as many threads; a CPU coroutine
    holds the loop, and its lag shows it (the lab says LOOP BLOCKED)."""
    memory = [_measured(x.pss_peak_mib) for x in (aio, gevent, threads)]
    lag = _measured(cpu.loop_lag_max_s)
    said = any(note.startswith("LOOP BLOCKED") for note in cpu.notes)
    held = aio.speedup >= 0.9 * gevent.speedup and memory[0] < memory[2] and lag >= 0.1 and said
    return Verdict(13, "rewriting tasks as coroutines pays for waiting, not for computing: the asyncio pool overlaps "
                       "waits as well as gevent in less memory than threads, and a CPU coroutine stops its loop",
                   f"asyncio within 10% of gevent's speedup (or better) at {slots} sleeping tasks in flight, in less "
                   "memory than threads; CPU coroutines make the loop's timers >= 100 ms late, said LOOP BLOCKED",
                   f"asyncio {aio.speedup:.1f}x in {memory[0]:.0f} MiB, gevent {gevent.speedup:.1f}x in "
                   f"{memory[1]:.0f} MiB, threads {threads.speedup:.1f}x in {memory[2]:.0f} MiB; cpu coroutines: the "
                   f"loop {lag * 1000:,.0f} ms late at worst{', said LOOP BLOCKED' if said else ', NOT said'}", held)


def decision_table(results: pd.DataFrame) -> pd.DataFrame:
    """Best pool per workload from measured speedups (columns pool, workload, speedup, mean_cores_used)."""
    rows = []
    for workload, group in results.groupby("workload", sort=False):
        ranked = group.sort_values("speedup", ascending=False)
        best = ranked.iloc[0]
        rows.append({"workload": workload, "best pool": best["pool"], "speedup": round(best["speedup"], 2),
                     "runner-up": ranked.iloc[1]["pool"] if len(ranked) > 1 else None,
                     "ranking": " > ".join(ranked["pool"])})
    return pd.DataFrame(rows)


def choosing_a_pool(table: pd.DataFrame, cores: int) -> Verdict:
    best = dict(zip(table["workload"], table["best pool"], strict=False))
    cpu_ok = best.get("cpu") == "prefork" if cores > 1 else True
    io_ok = best.get("io_sleep") not in (None, "solo")
    c_ok = best.get("gil_release") in ("threads", "prefork") if cores > 1 else True
    return Verdict(9, "the pool to choose follows the work: processes for Python CPU work, threads or greenlets "
                      "for I/O, threads or processes for GIL-releasing C code",
                   "prefork best on cpu; a non-solo pool best on io_sleep; threads or prefork best on gil_release",
                   "; ".join(f"{w}: {p}" for w, p in best.items()), cpu_ok and io_ok and c_ok)
