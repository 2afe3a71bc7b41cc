"""RunSpec: what one run measures, validated once, before anything starts."""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

POOLS = ("prefork", "threads", "solo", "gevent", "eventlet")
WORKLOADS = ("busy_wait", "cpu", "io_sleep", "io_net", "gil_release")
GREEN_POOLS = ("gevent", "eventlet")

# What kind of work each workload is; the ideal speedup and the summary's wording follow from it.
WORKLOAD_KIND = {
    "busy_wait": "python-cpu",
    "cpu": "python-cpu",
    "io_sleep": "io",
    "io_net": "io",
    "gil_release": "c-cpu",
}


BACKGROUND_WORKLOADS = ("cpu", "busy_wait", "gil_release", "io_sleep")
BACKGROUND_STRETCH = 1.5


class SpecError(ValueError):
    """A user's mistake in a run setting: shown as one line, never as a traceback."""


def default_prefetch(pool: str) -> int:
    """The prefetch multiplier a careful operator would choose for this pool.

    With late acks, multiplier 1 reserves one task per slot: prefork and threads hand work only
    to a free slot. The green pools run Celery's `synloop`, which waits up to 2 s in
    `drain_events` before it asks for more once the prefetch limit is reached (field notes:
    8 sleep tasks took 6.34 s at multiplier 1, 1.10 s at 4), so they get 0, no limit: the pool's
    own concurrency still caps how many run at once.
    """
    return 0 if pool in GREEN_POOLS else 1


@dataclass(frozen=True)
class RunSpec:
    pool: str = "threads"
    workload: str = "cpu"
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    tasks: int = 0  # 0: four per slot, see __post_init__
    duration: float = 0.25
    switch_interval: float = 0.005
    prefetch: int | None = None  # None: the pool's default
    sample_hz: float = 50.0
    timeout: float | None = None  # None: derived from the work, see deadline_s
    # Tasks submitted first and run beside the measured ones, e.g. CPU work next to io_net for the
    # convoy effect. They last BACKGROUND_STRETCH x duration, to cover the measured tasks.
    background: str | None = None
    background_tasks: int = 0
    # Off by default: who ran on a CPU, per thread, at 1 kHz (from the harness) and GIL contention
    # reported by gilknocker from inside the worker. Their cost is recorded in run.json.
    gil_probe: bool = False

    def __post_init__(self) -> None:
        if self.tasks == 0:
            object.__setattr__(self, "tasks", 4 * self.concurrency)
        if self.prefetch is None:
            object.__setattr__(self, "prefetch", default_prefetch(self.pool))

    @property
    def kind(self) -> str:
        return WORKLOAD_KIND[self.workload]

    @property
    def is_green(self) -> bool:
        return self.pool in GREEN_POOLS

    @property
    def background_duration(self) -> float:
        return BACKGROUND_STRETCH * self.duration

    def deadline_s(self) -> float:
        """How long the run may take once tasks are submitted, before it is called stuck.

        Generous, twice the slowest honest schedule plus slack: CPU work one task after another
        (the GIL may serialise it); I/O work in waves of `concurrency` tasks, each wave allowed
        Celery's 2 s green-pool dispatch gap; a switch interval longer than a task can delay each
        task by up to one interval; 10 ms of broker round trips per task.
        """
        if self.timeout is not None:
            return self.timeout
        per_task = self.duration + min(self.switch_interval, 60.0)
        waves = self.tasks if self.kind != "io" or self.pool == "solo" else math.ceil(self.tasks / self.concurrency)
        background = self.background_tasks * (self.background_duration + min(self.switch_interval, 60.0))
        return 30.0 + 2.0 * (waves * (per_task + 2.0) + background) + 0.01 * self.tasks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _whole(name: str, raw: Any, minimum: int) -> int:
    text = str(raw).strip()
    try:
        value = int(text)
    except ValueError:
        raise SpecError(f"{name} must be a whole number >= {minimum}, got {raw!r}") from None
    if value < minimum:
        raise SpecError(f"{name} must be a whole number >= {minimum}, got {raw!r}")
    return value


def _positive(name: str, raw: Any) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise SpecError(f"{name} must be a number > 0 (seconds), got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SpecError(f"{name} must be a number > 0 (seconds), got {raw!r}")
    return value


def _flag(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "yes", "true", "on"):
        return True
    if text in ("", "0", "no", "false", "off"):
        return False
    raise SpecError(f"{name} must be on or off (1/0, yes/no), got {raw!r}")


def _choice(name: str, raw: Any, allowed: tuple[str, ...]) -> str:
    value = str(raw).strip()
    if value not in allowed:
        raise SpecError(f"unknown {name} {raw!r}; allowed: {', '.join(allowed)}")
    return value


def build_spec(
    pool: Any = "threads",
    workload: Any = "cpu",
    concurrency: Any = None,
    tasks: Any = None,
    duration: Any = 0.25,
    switch_interval: Any = 0.005,
    prefetch: Any = None,
    sample_hz: Any = 50.0,
    timeout: Any = None,
    background: Any = None,
    background_tasks: Any = 0,
    gil_probe: Any = False,
) -> RunSpec:
    """Validate raw settings (strings from the CLI or values from code) into a RunSpec."""
    pool = _choice("pool", pool, POOLS)
    workload = _choice("workload", workload, WORKLOADS)
    concurrency = (os.cpu_count() or 1) if concurrency in (None, "") else _whole("concurrency", concurrency, 1)
    tasks = 0 if tasks in (None, "") else _whole("tasks", tasks, 1)
    prefetch = None if prefetch in (None, "") else _whole("prefetch", prefetch, 0)
    sample_hz = _positive("sample rate (Hz)", sample_hz)
    if sample_hz > 1000:
        raise SpecError(f"sample rate (Hz) must be at most 1000, got {sample_hz:g}")
    background = None if background in (None, "", "none") else _choice("background workload", background,
                                                                       BACKGROUND_WORKLOADS)
    background_tasks = _whole("background tasks", background_tasks, 0)
    if background is None:
        background_tasks = 0
    elif background_tasks == 0:
        background_tasks = 1
    gil_probe = _flag("gil probe", gil_probe)
    if gil_probe and pool in GREEN_POOLS:
        raise SpecError(f"the GIL probe runs on prefork, threads and solo; {pool} runs every task in one OS "
                        "thread, so there is no GIL handover to see")
    return RunSpec(
        pool=pool,
        workload=workload,
        concurrency=concurrency,
        tasks=tasks,
        duration=_positive("duration", duration),
        switch_interval=_positive("switch interval", switch_interval),
        prefetch=prefetch,
        sample_hz=sample_hz,
        timeout=None if timeout in (None, "") else _positive("timeout", timeout),
        background=background,
        background_tasks=background_tasks,
        gil_probe=gil_probe,
    )
