"""The run folder: the only code that writes or reads `results/<run-id>/`.

Layout of a run folder (schema_version 1):
  run.json     manifest: schema_version, run_id, status, reason, spec, settings, environment,
               summary, files. Written first with status "running" and last with the final
               status, atomically, so a folder never looks complete when it is not.
  tasks.csv    one row per task: task_id, index, name, submitted, started, finished, pid,
               thread_id, greenlet_id, slot, cpu_s, switch_interval, gil_enabled, error, and the
               workload's own columns (io_net: ops, rtt_mean_s, rtt_p95_s, rtt_max_s).
  samples.csv  CPU samples of the worker's process tree (see harness.sampler.COLUMNS).
  worker.log   the worker's own output.
  *.png        figures.

Schema versions: 1 — first version.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA_VERSION = 1
STATUSES = ("running", "complete", "failed", "interrupted")


class RunLoadError(RuntimeError):
    """A run folder that cannot be read: the message names the file."""


def new_run_id(pool: str, workload: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{pool}-{workload}-{secrets.token_hex(2)}"


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: a reader never sees it half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def link_latest(folder: Path, name: str) -> None:
    """Point <folder's parent>/<name> at `folder` (a relative symlink, replaced atomically)."""
    link = folder.parent / name
    tmp = folder.parent / f".{name}-{folder.name}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder.name)
    os.replace(tmp, link)


class RunFolder:
    """A new folder for one run; refuses to reuse an existing one."""

    def __init__(self, results_dir: Path, run_id: str) -> None:
        self.results_dir = Path(results_dir)
        self.run_id = run_id
        self.path = self.results_dir / run_id
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.path.mkdir()  # raises FileExistsError: a run never overwrites another

    def file(self, name: str) -> Path:
        return self.path / name

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        manifest = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, **manifest}
        write_atomic(self.file("run.json"), json.dumps(manifest, indent=2, default=str) + "\n")

    def write_frame(self, name: str, df: pd.DataFrame) -> None:
        tmp = self.file(f".{name}.tmp")
        df.to_csv(tmp, index=False, float_format="%.9f")
        os.replace(tmp, self.file(name))

    def mark_latest(self) -> None:
        link_latest(self.path, "latest")


@dataclass
class Run:
    """A run as read back: the manifest and its tables."""

    path: Path
    manifest: dict[str, Any]
    tasks: pd.DataFrame
    samples: pd.DataFrame

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def spec(self) -> dict[str, Any]:
        return self.manifest["spec"]

    @property
    def summary(self) -> dict[str, Any]:
        return self.manifest.get("summary") or {}

    @property
    def status(self) -> str:
        return self.manifest["status"]


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise RunLoadError(f"{path}: missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RunLoadError(f"{path}: unreadable ({exc})") from None


def load_run(path: str | Path = "results/latest", allow_incomplete: bool = False) -> Run:
    """Read a run folder. Refuses an incomplete run unless `allow_incomplete`."""
    path = Path(path)
    manifest_path = path / "run.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise RunLoadError(f"{manifest_path}: missing (is {path} a run folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunLoadError(f"{manifest_path}: not valid JSON ({exc})") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int):
        raise RunLoadError(f"{manifest_path}: no schema_version")
    if version > SCHEMA_VERSION:
        raise RunLoadError(f"{manifest_path}: schema_version {version} is newer than this lab reads "
                           f"({SCHEMA_VERSION}); update the lab")
    status = manifest.get("status")
    if status != "complete" and not allow_incomplete:
        raise RunLoadError(f"{manifest_path}: run is {status}, not complete"
                           f"{': ' + manifest['reason'] if manifest.get('reason') else ''}")
    tasks = _read_csv(path / "tasks.csv") if (path / "tasks.csv").exists() or status == "complete" else pd.DataFrame()
    spec = manifest.get("spec") or {}
    if status == "complete" and "tasks" in spec:
        expected = spec["tasks"] + spec.get("background_tasks", 0)
        if len(tasks) != expected:
            raise RunLoadError(f"{path / 'tasks.csv'}: {len(tasks)} rows, but the run recorded {expected} tasks "
                               "(truncated or edited?)")
    samples = _read_csv(path / "samples.csv") if (path / "samples.csv").exists() or status == "complete" else pd.DataFrame()
    return Run(path=path.resolve(), manifest=manifest, tasks=tasks, samples=samples)
