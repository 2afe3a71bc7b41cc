"""The stored records, typed: a run's manifest (spec, settings, environment, summary) and a sweep's.

Each field is declared once, here; `from_dict` reads the JSON a result file holds (any field an older
schema or analysis did not write reads as its default) and `to_dict` writes it back. Keys this lab does not
know (written by a newer one, or a field since retired) are kept in `extra` and written back unchanged, so
reading and rewriting a folder loses nothing. Only harness.results reads or writes the files themselves.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from harness.model.settings import SETTINGS
from harness.model.spec import RunSpec

T = TypeVar("T")


class Status(str, enum.Enum):
    """A run's or a sweep's state (a sweep entry is also PENDING until its run starts; a sweep is PARTIAL
    when some of its runs failed)."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    PENDING = "pending"
    PARTIAL = "partial"

    def __str__(self) -> str:
        return self.value


class Role(str, enum.Enum):
    """A task's part in a run (tasks.csv's `role`): run alone as the serial reference, measured, or beside them."""

    REFERENCE = "reference"
    FOREGROUND = "foreground"
    BACKGROUND = "background"

    def __str__(self) -> str:
        return self.value


def _known(cls: type, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`data` split into the fields `cls` declares and the rest."""
    names = {f.name for f in fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names}


class Record:
    """A dataclass read from and written to JSON, keeping keys it does not declare in `extra`."""

    extra: dict[str, Any]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
        known, rest = _known(cls, dict(data or {}))
        return cls(**known, extra=rest)  # type: ignore[call-arg]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "extra"}  # type: ignore[arg-type]
        return {**out, **self.extra}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass
class GilProbe(Record):
    """The GIL probes' figures while two or more measured tasks ran at once, and what the probes cost."""

    gil_hold_median_s: float | None = None
    gil_hold_p90_s: float | None = None
    gil_handoffs_per_s: float | None = None
    gil_contended_s: float | None = None
    contention_mean: float | None = None
    oncpu_sampler_cpu_s: float | None = None
    oncpu_sampler_core_fraction: float | None = None
    oncpu_rate_hz: float | None = None
    oncpu_sweeps_dropped: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Load(Record):
    """An open-loop load's figures (harness.analysis.load): latency from each task's scheduled time, after the
    warm-up; how late the submitter sent; whether the pool kept up."""

    offered_rate: float | None = None
    finish_rate: float | None = None          # tasks finished per second in the load's second half
    backlog_growth_per_s: float | None = None  # tasks in the system (queued or running), their growth then
    queue_depth_growth_per_s: float | None = None  # the broker's queue, sampled
    queue_depth_max: int | None = None
    saturated: bool | None = None
    warmup_s: float | None = None
    latency_tasks: int | None = None
    latency_p50_s: float | None = None
    latency_p90_s: float | None = None
    latency_p99_s: float | None = None
    latency_p999_s: float | None = None
    latency_max_s: float | None = None
    wait_p50_s: float | None = None
    wait_p99_s: float | None = None
    wait_max_s: float | None = None
    submit_late_p50_s: float | None = None
    submit_late_p99_s: float | None = None
    submit_late_max_s: float | None = None
    submitter_behind: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Summary(Record):
    """A run's summary numbers (README, "How to read the numbers"), computed by harness.analysis.summary.

    None is "not measured": by an older analysis, or for work where the figure means nothing.
    """

    tasks_done: int = 0
    tasks_failed: int = 0
    makespan_s: float = float("nan")
    batch_started_t: float | None = None  # when the batch began (epoch s): a sweep pairs runs with solo by it
    throughput_per_s: float = float("nan")
    serial_s: float = float("nan")
    serial_basis: str = ""
    alone_s: float | None = None
    alone_cpu_s: float | None = None
    alone_runs_s: list[float] | None = None  # every time alone, in the order they ran
    machine_drift: float | None = None       # their range over their median
    alone_cpu_share: float | None = None     # a task's own CPU alone over its time alone
    task_stretch: float | None = None        # a task's time in the batch over its time alone
    work_inflation: float | None = None
    shares_nothing: bool | None = None
    speedup: float = float("nan")
    ideal_speedup: float | None = None
    efficiency: float | None = None
    cores: int = 1
    mean_tasks_running: float = float("nan")
    max_tasks_running: int = 0
    mean_cores_used: float = float("nan")
    machine_cores_used: float = float("nan")
    other_cores_used: float | None = None
    service_cores_used: float | None = None  # the run's PostgreSQL or HTTP service, while the tasks ran
    worker_stopped_s: float | None = None
    steal_cores: float | None = None
    disturbed: bool | None = None
    worker_cpu_s: float = float("nan")
    task_cpu_s: float | None = None
    task_cpu_share: float = float("nan")
    queue_wait_p50_s: float = float("nan")
    queue_wait_p95_s: float = float("nan")
    run_time_p50_s: float = float("nan")
    run_time_p95_s: float = float("nan")
    latency_p95_s: float | None = None       # what a caller waits: submit to finish
    latency_p50_s: float | None = None
    per_task: list[dict[str, Any]] | None = None  # the user's app's mix: the figures per task name (analysis.mix)
    slots_used: int = 0
    switch_intervals_seen: list[float] = field(default_factory=list)
    switch_interval_ok: bool = True
    gil_wait_mean_s: float | None = None
    gil_wait_fraction: float | None = None
    rtt_mean_s: float | None = None
    rtt_max_s: float | None = None
    round_trips: int | None = None
    dispatch_gap_p50_s: float | None = None
    dispatch_gap_max_s: float | None = None
    second_start_delay_s: float | None = None
    phantom: bool = False
    phantom_cores: float | None = None
    gil_enabled_tasks: int | None = None
    rss_peak_mib: float | None = None
    rss_mean_mib: float | None = None
    uss_peak_mib: float | None = None
    uss_mean_mib: float | None = None
    pss_peak_mib: float | None = None
    pss_mean_mib: float | None = None
    unsteady: bool | None = None
    unsteady_cause: str = ""
    # A pool with an event loop (asyncio, gevent, eventlet): how late it woke its timers (harness.analysis.loop)
    loop_lag_mean_s: float | None = None
    loop_lag_p95_s: float | None = None
    loop_lag_max_s: float | None = None
    loop_block_max_s: float | None = None  # the asyncio pool: the longest a task held the loop in one step
    # HOSTS: per host, its tasks, the cores its workers used and its machine's, its clock (harness.analysis.hosts)
    hosts: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)
    gil_probe: GilProbe | None = None
    load: Load | None = None  # an open-loop load (RATE)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Summary:
        known, rest = _known(cls, dict(data or {}))
        probe, load = known.pop("gil_probe", None), known.pop("load", None)
        return cls(**known, gil_probe=GilProbe.from_dict(probe) if probe else None,
                   load=Load.from_dict(load) if load else None, extra=rest)

    def metric(self, name: str) -> Any:
        """A field by its name, for tables whose columns name summary fields (a sweep's metrics); an open-loop load's
        as load_<field> (a saturated load reads 1.0, one that held 0.0); None if unknown."""
        if name.startswith("load_") and name[5:] in LOAD_FIELDS:
            value = getattr(self.load, name[5:]) if self.load is not None else None
            return float(value) if isinstance(value, bool) else value
        return getattr(self, name, None) if name in SUMMARY_FIELDS else self.extra.get(name)


SUMMARY_FIELDS = frozenset(f.name for f in fields(Summary)) - {"extra"}
LOAD_FIELDS = frozenset(f.name for f in fields(Load)) - {"extra"}


@dataclass
class Interpreter(Record):
    """The Python a worker ran on (harness.lab.interpreters), as the run recorded it."""

    python: str | None = None
    requested: str | None = None
    version: str | None = None
    implementation: str | None = None
    free_threaded: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OtherProcess(Record):
    """One of the busiest other processes while a run's tasks ran (harness.lab.machine_load)."""

    name: str = ""
    pid: int | None = None
    cpu_s: float | None = None
    cores: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class MachineLoad(Record):
    """What else the machine did around a run: its load averages before and after, and the busiest other
    processes (harness.lab.machine_load)."""

    load_average_before: list[float] | None = None
    load_average_after: list[float] | None = None
    busiest_other_processes: list[OtherProcess] = field(default_factory=list)
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MachineLoad:
        known, rest = _known(cls, dict(data or {}))
        known["busiest_other_processes"] = [OtherProcess.from_dict(p) for p in known.get("busiest_other_processes")
                                            or []]
        return cls(**known, extra=rest)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "busiest_other_processes": [p.to_dict() for p in self.busiest_other_processes]}


@dataclass
class RunSettings(Record):
    """How the lab set the run up and what it saw of its own machinery: the fields the analysis and the pages
    read are declared; the lab's other records (broker, argv, timings) travel in `extra`."""

    reference_tasks: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)
    worker_interpreter: Interpreter | None = None
    gil_probe_cost: dict[str, Any] | None = None
    harness_timings: dict[str, Any] = field(default_factory=dict)
    machine_load: MachineLoad | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunSettings:
        known, rest = _known(cls, dict(data or {}))
        interpreter, load = known.pop("worker_interpreter", None), known.pop("machine_load", None)
        return cls(**known, worker_interpreter=Interpreter.from_dict(interpreter) if interpreter else None,
                   machine_load=MachineLoad.from_dict(load) if load else None, extra=rest)

    @property
    def free_threaded(self) -> bool:
        return bool(self.worker_interpreter and self.worker_interpreter.free_threaded)

    @property
    def iterations_per_s(self) -> float | None:
        """The rate the run's fixed work was sized from, where it was calibrated."""
        rate = (self.calibration or {}).get("iterations_per_s")
        return float(rate) if rate else None


@dataclass
class Environment(Record):
    """The machine and software a run measured on (harness.lab.environment)."""

    cpu_affinity: int | None = None
    cpu_count_logical: int | None = None
    cpu_count_physical: int | None = None
    cpu_model: str | None = None
    python: str | None = None
    python_implementation: str | None = None
    platform: str | None = None
    hostname: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    cpu_governor: str | None = None
    load_average: list[float] | None = None
    time_utc: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cores(self) -> int:
        """The cores the run could use: its affinity, else the machine's logical cores."""
        return int(self.cpu_affinity or self.cpu_count_logical or 1)

    @property
    def physical_cores(self) -> int | None:
        return int(self.cpu_count_physical) if self.cpu_count_physical else None


def stored_spec(data: dict[str, Any]) -> tuple[RunSpec, dict[str, Any]]:
    """A stored spec as a RunSpec, and the keys no setting declares any more. A setting an older lab did not
    have reads as its default (no derived default: it did not apply then), so a stored run is read as it ran."""
    values: dict[str, Any] = {name: data.get(name, None if s.derive is not None else s.default)
                              for name, s in SETTINGS.items()}
    return RunSpec(**values), {k: v for k, v in data.items() if k not in SETTINGS}


@dataclass
class RunManifest:
    """run.json: what a run was asked (spec), how it was set up (settings), where (environment), and its result."""

    run_id: str
    status: Status
    spec: RunSpec
    settings: RunSettings = field(default_factory=RunSettings)
    environment: Environment = field(default_factory=Environment)
    summary: Summary | None = None
    reason: str | None = None
    owner: dict[str, Any] | None = None
    analysis_version: int | None = None
    files: list[str] = field(default_factory=list)
    # A run that failed or was interrupted after it submitted tasks: how many were submitted and recorded (written
    # only then; harness.pipeline refuses to summarize such a run).
    partial: dict[str, int] | None = None
    schema_version: int | None = None  # as read: the version the loader brought it to; the writer sets its own
    spec_extra: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunManifest:
        data = dict(data)
        spec, spec_extra = stored_spec(data.pop("spec"))
        summary = data.pop("summary", None)
        known = {k: data.pop(k) for k in ("reason", "owner", "analysis_version", "files", "partial", "schema_version")
                 if k in data}
        return cls(run_id=data.pop("run_id", ""), status=Status(data.pop("status")), spec=spec,
                   settings=RunSettings.from_dict(data.pop("settings", None)),
                   environment=Environment.from_dict(data.pop("environment", None)),
                   summary=Summary.from_dict(summary) if summary else None, spec_extra=spec_extra,
                   **known, extra=data)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status.value, "owner": self.owner, "reason": self.reason,
                "spec": {**self.spec.to_dict(), **self.spec_extra}, "settings": self.settings.to_dict(),
                "environment": self.environment.to_dict(),
                "summary": self.summary.to_dict() if self.summary is not None else None,
                "analysis_version": self.analysis_version, "files": self.files,
                **({"partial": self.partial} if self.partial is not None else {}), **self.extra}

    def replace(self, **changes: Any) -> RunManifest:
        return dataclasses.replace(self, **changes)


@dataclass
class Cell(Record):
    """One cell of a sweep: its number, its label, and the settings it runs with."""

    cell: int = 0
    label: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepEntry(Record):
    """One (cell, repeat) of a sweep: its run folder (under runs/) once started, its status, and why it failed."""

    cell: int = 0
    repeat: int = 0
    status: Status = Status.PENDING
    run: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = Status(self.status)


@dataclass
class AdvisorRecord(Record):
    """An advisor's sweep: the task's CPU share alone (what the plan and the recommendation rest on), how long it
    took alone, the run that timed it, the cores, and the plan's reason (harness.advisor)."""

    cpu_share: float | None = None
    alone_s: float | None = None
    probe_run: str | None = None
    cores: int | None = None
    plan: str = ""
    app: str | None = None                  # the user's Celery app (APP=), for the split's command lines
    split: dict[str, Any] | None = None     # the queue split planned for a mix (analysis.advice.plan_split)
    per_task: list[dict[str, Any]] | None = None  # the probe's figures per task name, for a mix
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepManifest(Record):
    """sweep.json: the experiment, its cells, one entry per (cell, repeat), and the sweep's state."""

    status: Status = Status.RUNNING
    experiment: dict[str, Any] = field(default_factory=dict)
    axes: list[str] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    runs: list[SweepEntry] = field(default_factory=list)
    kind: str = "sweep"
    sweep_id: str | None = None
    owner: dict[str, Any] | None = None
    quick: bool = False
    environment: Environment = field(default_factory=Environment)
    started_utc: str | None = None
    finished_utc: str | None = None
    analysis_version: int | None = None
    calibrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    advisor: AdvisorRecord | None = None  # an advisor's sweep: what it measured first and why it chose the cells
    order: str | None = None  # how its runs were ordered (harness.sweeps)
    schema_version: int | None = None  # as read: the version the loader brought it to; the writer sets its own
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SweepManifest:
        known, rest = _known(cls, dict(data or {}))
        known["status"] = Status(known.get("status", Status.RUNNING))
        known["cells"] = [Cell.from_dict(c) for c in known.get("cells", [])]
        known["runs"] = [SweepEntry.from_dict(e) for e in known.get("runs", [])]
        known["advisor"] = AdvisorRecord.from_dict(known["advisor"]) if known.get("advisor") else None
        known["environment"] = Environment.from_dict(known.get("environment"))
        return cls(**known, extra=rest)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["cells"] = [c.to_dict() for c in self.cells]
        out["runs"] = [e.to_dict() for e in self.runs]
        return out

    @property
    def repeats(self) -> int:
        """Runs per cell (the experiment's)."""
        return int(self.experiment.get("repeats", 1))

    @property
    def labels(self) -> dict[int, str]:
        return {c.cell: c.label for c in self.cells}

    def cell(self, number: int) -> Cell:
        return next(c for c in self.cells if c.cell == number)
