"""The worker pools: every rule about a pool lives in its record here.

Adding a pool is one entry in POOLS. Both sides read these records: the harness (defaults,
validation, the ideal speedup, figures) and the worker (how to time a task, how to name its slot,
where the GIL probe starts). Any other Celery pool class runs as `custom:package.module:Class`
(Celery's own `-P custom`), with a record made for it by `custom_pool`: nothing is assumed about it.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.project import MIN_PYTHON

# Kinds of work (see harness.model.workloads.KINDS) whose parallel limit is the cores, not the slots.
CPU_KINDS = ("python-cpu", "c-cpu")


@dataclass(frozen=True)
class Pool:
    name: str
    summary: str
    # Every task in one OS thread (greenlets): a task's own CPU comes from greenlet-switch
    # accounting, and there is no GIL handover to probe.
    green: bool
    # What a task runs in, which names its slot: "process", "thread", "greenlet", "interpreter" (a
    # subinterpreter), "coroutine" (a task in flight on an asyncio loop), or "where" (a custom pool: a process
    # when it is not the worker's own, else a thread).
    slot: str
    # Whether tasks run in the worker's main process, where `worker_init` fires (threads, solo,
    # green pools), or in child processes, where `worker_process_init` fires (prefork).
    tasks_in_main_process: bool
    # The kinds of work this pool runs in parallel: I/O up to its slots, CPU kinds up to the cores.
    # None: not known (a custom pool), so no ideal speedup is claimed for it.
    parallel_kinds: frozenset[str] | None
    # A module the worker must import for this pool to run at all.
    requires_module: str | None = None
    color: str = "#444444"
    # A pool class Celery runs as its `custom` pool, named in CELERY_CUSTOM_WORKER_POOL
    # (celery/concurrency/__init__.py reads it); None: a pool Celery knows by this record's name.
    celery_class: str | None = None
    # The oldest worker interpreter it runs on.
    min_python: tuple[int, int] = MIN_PYTHON
    # Why a recommendation of this pool comes with a warning: its maintainers discourage it for new code.
    deprecated: str | None = None
    # The one-at-a-time reference: every speedup in a sweep is against it, and the advisor measures it at 1.
    baseline: bool = False
    # Compared by the advisor (harness.analysis.advice) at the cores and 4x the cores.
    advised: bool = False
    # Its slots are cheap (threads, greenlets, not processes): the advisor also tries it at a high concurrency
    # when the task mostly waits.
    cheap_slots: bool = False
    # The event loop that runs its tasks, whose lag the worker measures (workloads.loop_lag): "asyncio" (the
    # asyncio pool's), "gevent" or "eventlet" (the hub). None: no loop (threads, processes).
    loop: str | None = None
    # Awaits a coroutine function's task on its loop (the asyncio pool); a plain function goes to the loop's
    # default executor. On the other pools a coroutine function runs through asyncio.run, a loop per call.
    awaits: bool = False

    @property
    def celery_pool(self) -> str:
        """What the worker's `-P` gets."""
        return "custom" if self.celery_class else self.name

    @property
    def label(self) -> str:
        """A short name fit for a folder name: a custom pool by its class (custom-TaskPool)."""
        return f"custom-{(self.celery_class or '').rpartition(':')[2]}" if self.custom else self.name

    @property
    def custom(self) -> bool:
        """A pool class the user named: the lab knows nothing of how it runs tasks."""
        return self.name.startswith(CUSTOM_PREFIX)

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
        return not self.green and not self.custom and self.loop is None

    @property
    def isolates_tasks(self) -> bool:
        """Whether tasks cannot contend with each other for an object: the pool runs them one at a time
        (solo), or each in a process of its own (prefork). Their work inflation is then the machine's speed."""
        return self.parallel_kinds == frozenset() or (self.slot == "process" and not self.custom)

    @property
    def gil_probe(self) -> bool:
        """The GIL probe watches the threads of processes hand one GIL over: not in a green pool (every task
        in one thread), nor between subinterpreters (a GIL each), nor in a pool the lab does not know."""
        return self.slot in ("process", "thread")

    def ideal_speedup(self, kind: str, concurrency: int, tasks: int, cores: int, gil_free: bool = False,
                      cpu_fraction: float | None = None, workers: int = 1, coroutine: bool = True) -> float | None:
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
        The user's own task is not assumed to be anything, nor is a custom pool: None.

        `workers` worker processes, each running this pool: what one worker runs in parallel
        (its concurrency, or 1), times the workers, for each kind. Two threads-pool workers are two
        processes, so two GILs: Python CPU work runs on two cores.

        On a pool that awaits (asyncio), a coroutine's waits overlap up to its tasks in flight and its CPU runs on
        the loop's one thread; a plain function (`coroutine` False) runs in the loop's default executor, a thread
        pool of executor_threads(cores): the threads pool's rule at that many slots.
        """
        if kind == "own" or self.parallel_kinds is None:
            return None
        if self.awaits and not coroutine:
            return POOLS["threads"].ideal_speedup(kind, min(concurrency, executor_threads(cores)), tasks, cores,
                                                  gil_free, cpu_fraction, workers)
        parallel = self.parallel_kinds | ({"python-cpu"} if gil_free and "c-cpu" in self.parallel_kinds else set())

        def at_once(k: str) -> int:  # tasks of kind k running at once
            return min(tasks, workers * (concurrency if k in parallel else 1))

        if kind == "mixed":
            waits_overlap = at_once("io")
            python_cores = min(at_once("python-cpu"), cores)
            if not cpu_fraction:
                return float(waits_overlap)
            return float(min(waits_overlap, python_cores / cpu_fraction))
        return min(at_once(kind), cores) if kind in CPU_KINDS else at_once(kind)

    def slot_name(self, pid: int, thread_id: int, greenlet_id: int | None = None, interpreter_id: int | None = None,
                  worker_pid: int | None = None, coroutine: int | None = None) -> str:
        """The execution slot that ran a task: a process, an OS thread, a greenlet, a subinterpreter, or a slot of
        the asyncio pool's tasks in flight (1..concurrency)."""
        if self.slot == "process" or (self.slot == "where" and pid != worker_pid):
            return f"process {pid}"
        if self.slot == "greenlet":
            return f"greenlet {greenlet_id}"
        if self.slot == "interpreter":
            return f"interpreter {interpreter_id}"
        if self.slot == "coroutine" and coroutine:
            return f"coroutine {coroutine}"
        return f"thread {thread_id}"

    @property
    def waiter(self) -> str:
        """Who takes the difference when tasks 'run' but cores are not used."""
        if self.green or self.loop:
            return "the event loop's single thread"
        if self.slot == "interpreter":
            return "the cores (each subinterpreter has its own GIL) or the main interpreter's hand-over"
        if self.slot == "process":  # a GIL per process: ready processes that got no core waited for the OS
            return "the OS scheduler (processes ready to run got no core)"
        return "the pool" if self.custom else "the GIL"


CUSTOM_PREFIX = "custom:"
_ALL = frozenset({"io", "python-cpu", "c-cpu"})  # (mixed and own work are derived from these: ideal_speedup)
POOLS: dict[str, Pool] = {p.name: p for p in (
    Pool("prefork", "child processes, each with its own interpreter and GIL", green=False, slot="process",
         tasks_in_main_process=False, parallel_kinds=_ALL, color="#1b9e77", advised=True),
    Pool("threads", "a thread pool in one process, sharing one GIL", green=False, slot="thread",
         tasks_in_main_process=True, parallel_kinds=frozenset({"io", "c-cpu"}), color="#d95f02", advised=True,
         cheap_slots=True),
    Pool("solo", "the worker's own thread, one task at a time", green=False, slot="thread",
         tasks_in_main_process=True, parallel_kinds=frozenset(), color="#7570b3", baseline=True),
    Pool("gevent", "greenlets in one OS thread", green=True, slot="greenlet", tasks_in_main_process=True,
         parallel_kinds=frozenset({"io"}), requires_module="gevent", color="#e7298a", advised=True, cheap_slots=True,
         loop="gevent"),
    Pool("eventlet", "greenlets in one OS thread (eventlet is deprecated upstream)", green=True, slot="greenlet",
         tasks_in_main_process=True, parallel_kinds=frozenset({"io"}), requires_module="eventlet",
         color="#66a61e", advised=True, cheap_slots=True, loop="eventlet",
         # eventlet's own README and PyPI page: "New usages of eventlet are now heavily discouraged!"
         deprecated="deprecated: eventlet's maintainers discourage it for new code (use gevent or threads)"),
    # The lab's own pool (workloads/interpreter_pool.py), run through Celery's custom pool: a thread per
    # slot, each running its task's function in a subinterpreter of its own, with its own GIL (PEP 684).
    # 3.13 has the API through the interpreters-pep-734 backport, 3.14 in the standard library; on
    # 3.12 the backport's low-level module crashed the interpreter on import (3.12.1, measured).
    Pool("interpreters", "subinterpreters in one process, each with its own GIL (PEP 684/734)", green=False,
         slot="interpreter", tasks_in_main_process=True, parallel_kinds=_ALL, color="#e6ab02",
         celery_class="workloads.interpreter_pool:TaskPool", min_python=(3, 13)),
    # The lab's own asyncio pool (workloads/asyncio_pool.py), run through Celery's custom pool: one event loop per
    # worker process, concurrency as tasks in flight. Celery's synchronous tracer runs in a greenlet per task on
    # the loop's thread, so the pool needs greenlet (gevent's dependency, installed with the lab). Processes:
    # WORKERS=N, a loop in each (no prefork-style children: a worker per process is what WORKERS already is).
    Pool("asyncio", "coroutines in flight on one asyncio event loop (the lab's own pool)", green=False,
         slot="coroutine", tasks_in_main_process=True, parallel_kinds=frozenset({"io"}), requires_module="greenlet",
         color="#1f78b4", celery_class="workloads.asyncio_pool:TaskPool", cheap_slots=True, loop="asyncio",
         awaits=True),
)}
POOL_NAMES = tuple(POOLS)
# The pools Celery itself names (`-P <name>`), as opposed to the lab's own run through `-P custom`.
CELERY_POOLS = tuple(name for name, p in POOLS.items() if p.celery_class is None)
# The one-at-a-time reference pool, and the pools the advisor compares with it.
BASELINE_POOL = next(name for name, p in POOLS.items() if p.baseline)
ADVISED_POOLS = tuple(name for name, p in POOLS.items() if p.advised)


def executor_threads(cores: int) -> int:
    """The threads of an asyncio loop's default executor (ThreadPoolExecutor's default size)."""
    return min(32, cores + 4)


def custom_pool(reference: str) -> Pool:
    """The record of a pool class the user names (package.module:Class): run by Celery's `-P custom`,
    its slots named from where its tasks ran, no parallelism assumed."""
    return Pool(f"{CUSTOM_PREFIX}{reference}", f"the pool class {reference}, through Celery's custom pool",
                green=False, slot="where", tasks_in_main_process=True, parallel_kinds=None, color="#444444",
                celery_class=reference)


def pool(name: str) -> Pool:
    if name.startswith(CUSTOM_PREFIX):
        return custom_pool(name[len(CUSTOM_PREFIX):])
    return POOLS[name]
