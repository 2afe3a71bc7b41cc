"""The run folder: the only code that writes or reads `results/<run-id>/`.

Layout of a run folder (schema_version 3):
  run.json     manifest: schema_version, run_id, status, reason, spec, settings, environment,
               summary, analysis_version, files. Written first with status "running" and last with
               the final status, atomically, so a folder never looks complete when it is not.
  tasks.csv    one row per task: task_id, index, role (reference, background, foreground), submitted,
               and the worker's record
               (workloads.protocol.TaskRecord) with the workload's own columns (io_net: ops, rtt_*).
  samples.csv  CPU samples of the worker's process tree (see harness.lab.sampler.COLUMNS).
  queue.csv    an open-loop load's queue depth on the broker over time (harness.lab.queue_depth.COLUMNS).
  gil_oncpu.csv, gil_contention.csv   with the GIL probe: each worker thread's on-CPU ns, and
               gilknocker's contention reports.
  loop_lag.csv a pool with an event loop (asyncio, gevent, eventlet): how late its loop woke a timer, in windows
               of 0.1 s (workloads.loop_lag.COLUMNS).
  worker.log   the worker's own output.
  *.png, report.html   drawn from the above by harness.present; never read back.

The raw records (tasks, samples, probes, settings, timings) are what a run measured. `summary` is
computed from them by harness.analysis, which stamps it with its `analysis_version`, so
`python -m harness summarize` can recompute it with a newer analysis.

Schema versions:
  1 - first version.
  2 - adds `analysis_version`, and `settings.gil_probe_cost`: the probes' own cost, a measurement
      that cannot be recomputed (version 1 kept it only inside `summary.gil_probe`).
  3 - tasks.csv has rows of role "reference": measured tasks run alone (`settings.reference_tasks`
      of them), the serial reference of the speedup: one before the others (runs until analysis 5),
      then also one after them and one between the parts of a long batch (analysis 6 on). Older
      folders have none, and their summaries fall back to the earlier serial rule.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.errors import ResultsError
from harness.results.files import read_json, settle_running, write_atomic, write_frame
from harness.results.paths import LATEST
from harness.results.records import Role, RunManifest, Status, Summary
from harness.results.versions import Upgrade, upgrade

if TYPE_CHECKING:
    from harness.model.spec import RunSpec

SCHEMA_VERSION = 3
GIL_PROBE_COST_KEYS = ("oncpu_sampler_cpu_s", "oncpu_sampler_core_fraction", "oncpu_rate_hz", "oncpu_sweeps_dropped")


def update_to_2(manifest: dict[str, Any]) -> dict[str, Any]:
    """Version 1 summaries were made by analysis version 1; the probes' cost moves out of the summary."""
    probe = (manifest.get("summary") or {}).get("gil_probe")
    settings = dict(manifest.get("settings") or {})
    settings["gil_probe_cost"] = {k: probe[k] for k in GIL_PROBE_COST_KEYS if k in probe} if probe else None
    return {**manifest, "settings": settings, "analysis_version": 1 if manifest.get("summary") else None}


def update_to_3(manifest: dict[str, Any]) -> dict[str, Any]:
    """Folders before version 3 ran no reference task."""
    return {**manifest, "settings": {**(manifest.get("settings") or {}), "reference_tasks": 0}}


UPGRADES: dict[int, Upgrade] = {2: update_to_2, 3: update_to_3}


def new_run_id(pool: str, workload: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{pool}-{workload}-{secrets.token_hex(2)}"


# Space a new run folder holds while the run goes (a file of zeros), freed just before its final
# run.json is written: a disk that fills meanwhile (the run's own records, or anyone's) still takes
# the manifest that says the run failed. A final run.json is 3-7 KB.
RESERVE = ".reserve"
RESERVE_BYTES = 256 * 1024


class RunFolder:
    """Writes one run's folder: a new one (refusing to reuse a name), or an existing one to update."""

    def __init__(self, results_dir: Path, run_id: str, existing: bool = False) -> None:
        self.results_dir = Path(results_dir)
        self.run_id = run_id
        self.path = self.results_dir / run_id
        if not existing:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            self.path.mkdir()  # raises FileExistsError: a run never overwrites another
            self.file(RESERVE).write_bytes(bytes(RESERVE_BYTES))

    @classmethod
    def of(cls, run: Run) -> RunFolder:
        return cls(run.path.parent, run.path.name, existing=True)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_manifest(self, manifest: RunManifest) -> None:
        if manifest.status != Status.RUNNING:  # the last word on the run: the space kept for it is freed
            self.file(RESERVE).unlink(missing_ok=True)
        body = {k: v for k, v in manifest.to_dict().items() if k not in ("schema_version", "run_id")}
        data = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, **body}
        write_atomic(self.file("run.json"), json.dumps(data, indent=2, default=str) + "\n")

    def write_frame(self, name: str, df: pd.DataFrame) -> None:
        write_frame(self.file(name), df)

    def listing(self) -> list[str]:
        """The files the folder holds, run.json first: the manifest's `files`."""
        names = sorted(p.name for p in self.path.iterdir() if p.is_file() and not p.name.startswith("."))
        return ["run.json"] + [n for n in names if n != "run.json"]


@dataclass
class Run:
    """A run as read back: the manifest (at the current schema version) and its tables."""

    path: Path
    manifest: RunManifest
    tasks: pd.DataFrame
    samples: pd.DataFrame
    queue: pd.DataFrame = field(default_factory=pd.DataFrame)  # an open-loop load's queue depth (queue.csv)

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def spec(self) -> RunSpec:
        return self.manifest.spec

    @property
    def summary(self) -> Summary | None:
        return self.manifest.summary

    @property
    def status(self) -> Status:
        return self.manifest.status

    @property
    def reference(self) -> pd.DataFrame:
        """The tasks run alone (empty before schema version 3)."""
        return tasks_of(self.tasks, Role.REFERENCE)

    @property
    def foreground(self) -> pd.DataFrame:
        """The measured tasks, without the background ones run beside them."""
        return tasks_of(self.tasks, Role.FOREGROUND)

    def table(self, name: str) -> pd.DataFrame | None:
        """An optional table of the folder (gil_oncpu.csv, gil_contention.csv), or None when absent."""
        path = self.path / name
        return read_csv(path) if path.exists() else None


def tasks_of(tasks: pd.DataFrame, role: Role) -> pd.DataFrame:
    """A run's tasks of one role. Folders before schema version 3 have no role column: all their tasks were
    measured ones, and none ran alone."""
    if "role" in tasks:
        return tasks[tasks["role"] == role.value]
    return tasks if role == Role.FOREGROUND else tasks.iloc[0:0]


def read_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
        with open(path, "rb") as f:  # every file the lab writes ends its last row with a newline
            f.seek(-1, 2)
            cut = f.read(1) != b"\n"
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc})") from None
    except OSError as exc:
        raise ResultsError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if cut:
        raise ResultsError(f"{path}: cut off in its last row (the file does not end with a newline): it is truncated")
    return table


def read_manifest(path: Path) -> RunManifest:
    """run.json of a run folder, upgraded to the current schema version."""
    manifest_path = Path(path) / "run.json"
    data = settle_running(upgrade(read_json(manifest_path, "run"), SCHEMA_VERSION, UPGRADES, manifest_path), "run")
    try:
        return RunManifest.from_dict(data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{manifest_path}: not a run manifest this lab reads ({exc}): the file is damaged") from None


def load_run(path: str | Path = LATEST, allow_incomplete: bool = False) -> Run:
    """Read a run folder. Refuses an incomplete run unless `allow_incomplete`."""
    path = Path(path)
    manifest = read_manifest(path)
    status = manifest.status
    complete = status == Status.COMPLETE
    if not complete and not allow_incomplete:
        raise ResultsError(f"{path / 'run.json'}: run is {status}, not complete"
                           f"{': ' + manifest.reason if manifest.reason else ''}")
    tasks = read_csv(path / "tasks.csv") if (path / "tasks.csv").exists() or complete else pd.DataFrame()
    if len(tasks) and "worker" not in tasks:  # recorded before WORKERS: one worker, number 1
        tasks["worker"] = 1
    spec = manifest.spec
    if complete and spec.tasks is not None:
        expected = spec.tasks + (spec.background_tasks or 0) + manifest.settings.reference_tasks
        if len(tasks) != expected:
            raise ResultsError(f"{path / 'tasks.csv'}: {len(tasks)} rows, but the run recorded {expected} tasks "
                               "(truncated or edited?)")
    samples = read_csv(path / "samples.csv") if (path / "samples.csv").exists() or complete else pd.DataFrame()
    queue = read_csv(path / "queue.csv") if (path / "queue.csv").exists() else pd.DataFrame()
    return Run(path=path.resolve(), manifest=manifest, tasks=tasks, samples=samples, queue=queue)
