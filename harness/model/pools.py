"""The worker pools: every rule about a pool lives in its record here.

Adding a pool is one entry in POOLS. Both sides read these records: the harness (defaults,
validation, the ideal speedup, figures) and the worker (how to time a task, how to name its slot,
where the GIL probe starts).
"""
from __future__ import annotations

from dataclasses import dataclass

# Kinds of work (see harness.model.workloads.KINDS) whose parallel limit is the cores, not the slots.
CPU_KINDS = ("python-cpu", "c-cpu")


@dataclass(frozen=True)
class Pool:
    name: str
    summary: str
    # Every task in one OS thread (greenlets): a task's own CPU comes from greenlet-switch
    # accounting, and there is no GIL handover to probe.
    green: bool
    # What a task runs in, which names its slot: "process", "thread" or "greenlet".
    slot: str
    # Whether tasks run in the worker's main process, where `worker_init` fires (threads, solo,
    # green pools), or in child processes, where `worker_process_init` fires (prefork).
    tasks_in_main_process: bool
    # The kinds of work this pool runs in parallel: I/O up to its slots, CPU kinds up to the cores.
    parallel_kinds: frozenset[str]
    # A module the worker must import for this pool to run at all.
    requires_module: str | None = None
    color: str = "#444444"

    @property
    def default_prefetch(self) -> int:
        """The prefetch multiplier a careful operator would choose for this pool.

        With late acks, multiplier 1 reserves one task per slot: prefork and threads hand work only
        to a free slot. The green pools run Celery's `synloop`, which waits up to 2 s in
        `drain_events` before it asks for more once the prefetch limit is reached (field notes:
        8 sleep tasks took 6.34 s at multiplier 1, 1.10 s at 4), so they get 0, no limit: the pool's
        own concurrency still caps how many run at once.
        """
        return 0 if self.green else 1

    @property
    def stays_warm(self) -> bool:
        """Whether a sweep keeps this pool's worker warm between runs (harness.lab.warm).

        Not the green pools: their `synloop` answers a control command and polls a newly added queue
        only between its 2 s waits in `drain_events`, so serving the next run on a warm worker took
        2-3 s (measured) against 0.7-0.8 s for a fresh worker's start and stop.
        """
        return not self.green

    @property
    def gil_probe(self) -> bool:
        """The GIL probe watches threads hand the GIL over; a green pool runs every task in one thread."""
        return not self.green

    def ideal_speedup(self, kind: str, concurrency: int, tasks: int, cores: int, gil_free: bool = False,
                      cpu_fraction: float | None = None) -> float | None:
        """The best speedup over serial this pool can give this kind of work, physically.

        solo runs one task at a time. I/O waits overlap in every other pool up to its concurrency.
        Pure-Python CPU work needs the GIL, so only separate processes (prefork) run it in parallel,
        up to the cores. C code that releases the GIL runs in parallel on threads too, but not in a
        green pool, where every greenlet shares one OS thread and the C call never yields. Without a
        GIL (`gil_free`: a free-threaded build with the GIL off), Python code runs in parallel wherever
        GIL-releasing C code does.

        Mixed work (a share `cpu_fraction` of each task's time alone is pure-Python CPU, the rest
        waiting) is bounded twice: by the slots that overlap its waits, and by the CPU it needs, which
        runs on as many cores as the pool runs Python in parallel (1 under a GIL): min(slots, cores / f).
        The user's own task is not assumed to be anything: None.
        """
        slots = min(concurrency, tasks)
        parallel = self.parallel_kinds | ({"python-cpu"} if gil_free and "c-cpu" in self.parallel_kinds else set())
        if kind == "own":
            return None
        if kind == "mixed":
            waits_overlap = slots if "io" in parallel else 1
            python_cores = min(slots, cores) if "python-cpu" in parallel else 1
            if not cpu_fraction:
                return float(waits_overlap)
            return float(min(waits_overlap, python_cores / cpu_fraction))
        if kind not in parallel:
            return 1
        return min(slots, cores) if kind in CPU_KINDS else slots

    def slot_name(self, pid: int, thread_id: int, greenlet_id: int | None) -> str:
        """The execution slot that ran a task: a process, an OS thread or a greenlet."""
        if self.slot == "process":
            return f"process {pid}"
        if self.slot == "greenlet":
            return f"greenlet {greenlet_id}"
        return f"thread {thread_id}"

    @property
    def waiter(self) -> str:
        """Who takes the difference when tasks 'run' but cores are not used."""
        return "the event loop's single thread" if self.green else "the GIL"


_ALL = frozenset({"io", "python-cpu", "c-cpu"})  # (mixed and own work are derived from these: ideal_speedup)
POOLS: dict[str, Pool] = {p.name: p for p in (
    Pool("prefork", "child processes, each with its own interpreter and GIL", green=False, slot="process",
         tasks_in_main_process=False, parallel_kinds=_ALL, color="#1b9e77"),
    Pool("threads", "a thread pool in one process, sharing one GIL", green=False, slot="thread",
         tasks_in_main_process=True, parallel_kinds=frozenset({"io", "c-cpu"}), color="#d95f02"),
    Pool("solo", "the worker's own thread, one task at a time", green=False, slot="thread",
         tasks_in_main_process=True, parallel_kinds=frozenset(), color="#7570b3"),
    Pool("gevent", "greenlets in one OS thread", green=True, slot="greenlet", tasks_in_main_process=True,
         parallel_kinds=frozenset({"io"}), requires_module="gevent", color="#e7298a"),
    Pool("eventlet", "greenlets in one OS thread (eventlet is deprecated upstream)", green=True, slot="greenlet",
         tasks_in_main_process=True, parallel_kinds=frozenset({"io"}), requires_module="eventlet",
         color="#66a61e"),
)}
POOL_NAMES = tuple(POOLS)
GREEN_POOLS = tuple(name for name, pool in POOLS.items() if pool.green)


def pool(name: str) -> Pool:
    return POOLS[name]
