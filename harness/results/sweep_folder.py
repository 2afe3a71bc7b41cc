"""The sweep folder: the only code that writes or reads `results/sweep-<id>/`.

Layout of a sweep folder (schema_version 2):
  sweep.json   manifest: experiment, axes, cells, one entry per (cell, repeat) with its run and
               status, environment, analysis_version of summary.csv
  runs/        the run folders (harness.results.run_folder)
  summary.csv  one row per cell: median and IQR of each metric over repeats (harness.analysis.stats),
               written by the sweep itself when its last run ends
  *.png, report.html   drawn from the above by harness.present

Schema versions:
  1 - first version (summary.csv was written only when the report was drawn).
  2 - adds `analysis_version`, the analysis that wrote summary.csv.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ResultsError
from harness.model.experiment import Experiment, cell_label
from harness.results.files import owner, read_json, settle_running, write_atomic, write_frame
from harness.results.records import Cell, Environment, Status, Summary, SweepEntry, SweepManifest
from harness.results.run_folder import Run, load_run, read_csv
from harness.results.versions import Upgrade, upgrade

SWEEP_SCHEMA_VERSION = 2


def update_to_2(manifest: dict[str, Any]) -> dict[str, Any]:
    """A version 1 summary.csv, where there is one, was made by analysis version 1."""
    return {**manifest, "analysis_version": 1}


UPGRADES: dict[int, Upgrade] = {2: update_to_2}


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_sweep_manifest(folder: Path, manifest: SweepManifest) -> None:
    """sweep.json, atomically: the one writer of the file (harness.sweeps and the advisor change the typed
    manifest and hand it here)."""
    data = {**manifest.to_dict(), "schema_version": SWEEP_SCHEMA_VERSION}
    write_atomic(Path(folder) / "sweep.json", json.dumps(data, indent=2, default=str) + "\n")


def load_sweep_manifest(folder: str | Path) -> SweepManifest:
    """sweep.json of a sweep folder, upgraded to the current schema version."""
    path = Path(folder) / "sweep.json"
    manifest = upgrade(read_json(path, "sweep"), SWEEP_SCHEMA_VERSION, UPGRADES, path)
    for key, kind in REQUIRED.items():
        if not isinstance(manifest.get(key), kind):
            raise ResultsError(f"{path}: {key!r} is missing or not a {kind.__name__}: the file is damaged")
    for entry in manifest["runs"]:
        if not isinstance(entry, dict) or not {"cell", "repeat", "status"} <= set(entry):
            raise ResultsError(f"{path}: a run entry lacks cell, repeat or status: the file is damaged")
    for cell in manifest["cells"]:
        if not isinstance(cell, dict) or not {"cell", "label", "settings"} <= set(cell):
            raise ResultsError(f"{path}: a cell lacks cell, label or settings: the file is damaged")
    try:
        return SweepManifest.from_dict(settle_running(manifest, "sweep"))
    except (TypeError, ValueError) as exc:
        raise ResultsError(f"{path}: not a sweep manifest this lab reads ({exc}): the file is damaged") from None


# What every sweep.json holds, whatever wrote it: a file without them is damaged, said in one line.
REQUIRED = {"status": str, "experiment": dict, "axes": list, "cells": list, "runs": list}


def new_sweep(experiment: Experiment, quick: bool, results_dir: Path, environment: dict,
              calibrations: dict[str, dict] | None = None) -> Path:
    """Create the sweep folder and its manifest with every (cell, repeat) pending, and the rates every cell's
    fixed work is sized from (harness.sweeps.calibrate_once)."""
    exp = experiment.shrunk() if quick else experiment
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    # A random suffix, as run ids have: two sweeps of one experiment started in the same second differ.
    folder = Path(results_dir) / f"sweep-{stamp}-{exp.name}{'-quick' if quick else ''}-{secrets.token_hex(2)}"
    folder.mkdir(parents=True)
    axes = list(exp.axes)
    cells = [Cell(cell=i, label=cell_label(s, axes), settings=s) for i, s in enumerate(exp.cells())]
    # Interleaved: every cell once, then every cell again, so slow drift spreads over all cells.
    entries = [SweepEntry(cell=c.cell, repeat=r) for r in range(exp.repeats) for c in cells]
    write_sweep_manifest(folder, SweepManifest(
        sweep_id=folder.name, status=Status.RUNNING, owner=owner(), quick=quick, experiment=exp.to_dict(),
        axes=axes, cells=cells, runs=entries, environment=Environment.from_dict(environment), started_utc=now_utc(),
        calibrations=calibrations or {}))
    return folder


def write_sweep_summary(folder: Path, table: pd.DataFrame, analysis_version: int) -> None:
    """summary.csv, and the analysis that made it in sweep.json."""
    write_frame(Path(folder) / "summary.csv", table, float_format="%.6g")
    manifest = load_sweep_manifest(folder)
    manifest.analysis_version = analysis_version
    write_sweep_manifest(folder, manifest)


@dataclass(frozen=True)
class SweepRun:
    """One (cell, repeat) of a sweep as read back: its entry, its cell, and its run's summary (None until the
    run is complete)."""

    entry: SweepEntry
    cell: Cell
    summary: Summary | None

    @property
    def label(self) -> str:
        return self.cell.label

    @property
    def settings(self) -> dict:
        return self.cell.settings


@dataclass
class Sweep:
    """A sweep as read back: its manifest, its per-cell summary and where its runs are."""

    path: Path
    manifest: SweepManifest

    @property
    def axes(self) -> list[str]:
        return self.manifest.axes

    @property
    def summary(self) -> pd.DataFrame:
        path = self.path / "summary.csv"
        if not path.exists():
            return pd.DataFrame()
        table = read_csv(path)
        if "warning" in table:  # an empty cell reads back as NaN, which is "true"
            table["warning"] = table["warning"].fillna("").astype(str)
        return table

    @property
    def complete(self) -> list[SweepEntry]:
        return [e for e in self.manifest.runs if e.status == Status.COMPLETE and e.run]

    @property
    def run_paths(self) -> list[Path]:
        return [self.run_path(e) for e in self.complete]

    @property
    def figures(self) -> list[Path]:
        return sorted(self.path.glob("*.png"))

    def run_path(self, entry: SweepEntry) -> Path:
        return self.path / "runs" / str(entry.run)

    def run(self, entry: SweepEntry) -> Run:
        return load_run(self.run_path(entry))

    def entries(self) -> list[SweepRun]:
        """Every (cell, repeat) entry with its cell (settings and label) and its run's summary."""
        cells = {c.cell: c for c in self.manifest.cells}
        return [SweepRun(e, cells[e.cell], self.run(e).summary if e.status == Status.COMPLETE else None)
                for e in self.manifest.runs]


def load_sweep(folder: str | Path) -> Sweep:
    folder = Path(folder)
    return Sweep(folder.resolve(), load_sweep_manifest(folder))
