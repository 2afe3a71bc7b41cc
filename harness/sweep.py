"""A sweep: every cell of an experiment, repeats interleaved, each cell an ordinary run folder.

Sweep folder (schema_version 1):
  sweep.json   manifest: experiment, cells, one entry per (cell, repeat) with its run and status
  runs/        the run folders
  summary.csv  one row per cell: median and IQR of each metric over repeats (harness.stats)
  *.png        figures chosen from the axes; report.html, the page to show
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd
from tqdm import tqdm

from harness import environment, stats
from harness.broker import Broker
from harness.experiment import Experiment, cell_label
from harness.results import RunLoadError, load_run, write_atomic
from harness.spec import build_spec
from harness.worker import WorkerError

SWEEP_SCHEMA_VERSION = 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_manifest(folder: Path, manifest: dict) -> None:
    write_atomic(folder / "sweep.json", json.dumps(manifest, indent=2, default=str) + "\n")


def load_sweep_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "sweep.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunLoadError(f"{path}: missing (is {folder} a sweep folder?)") from None
    except json.JSONDecodeError as exc:
        raise RunLoadError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("schema_version", 0) > SWEEP_SCHEMA_VERSION:
        raise RunLoadError(f"{path}: schema_version {manifest['schema_version']} is newer than this lab reads")
    return manifest


def new_sweep(experiment: Experiment, quick: bool, results_dir: Path) -> Path:
    """Create the sweep folder and its manifest with every (cell, repeat) pending."""
    exp = experiment.shrunk() if quick else experiment
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = Path(results_dir) / f"sweep-{stamp}-{exp.name}{'-quick' if quick else ''}"
    folder.mkdir(parents=True)
    axes = list(exp.axes)
    cells = [{"cell": i, "label": cell_label(s, axes), "settings": s} for i, s in enumerate(exp.cells())]
    # Interleaved: every cell once, then every cell again, so slow drift spreads over all cells.
    entries = [{"cell": c["cell"], "repeat": r, "status": "pending", "run": None, "reason": None}
               for r in range(exp.repeats) for c in cells]
    _write_manifest(folder, {
        "schema_version": SWEEP_SCHEMA_VERSION, "kind": "sweep", "sweep_id": folder.name, "status": "running",
        "quick": quick, "experiment": exp.to_dict(), "axes": axes, "cells": cells, "runs": entries,
        "environment": environment.collect(), "started_utc": _now(), "finished_utc": None,
    })
    return folder


def run_sweep(folder: Path, redis_url: str | None = None, log: Callable[[str], None] = print,
              show_progress: bool = True) -> dict:
    """Run every pending or failed entry of a sweep folder (so the same call resumes one)."""
    from harness.run import RunFailed, run_bench  # the sweep module stays importable without a broker

    folder = Path(folder)
    manifest = load_sweep_manifest(folder)
    cells = {c["cell"]: c for c in manifest["cells"]}
    todo = [e for e in manifest["runs"] if e["status"] != "complete"]
    manifest["status"] = "running"
    _write_manifest(folder, manifest)
    try:
        with Broker(redis_url) as broker, tqdm(total=len(todo), unit="run", disable=not show_progress) as bar:
            for done, entry in enumerate(todo, start=1):
                cell = cells[entry["cell"]]
                bar.set_description(f"{cell['label']} #{entry['repeat'] + 1}")
                try:
                    run = run_bench(build_spec(**cell["settings"]), results_dir=folder / "runs",
                                    redis_url=broker.url, log=lambda _line: None, mark_latest=False)
                    entry.update(status="complete", run=run.run_id, reason=None)
                except (RunFailed, WorkerError) as exc:
                    # A failed cell is recorded and the sweep goes on; a resume retries it.
                    entry.update(status="failed", reason=str(exc))
                    log(f"cell {cell['label']} repeat {entry['repeat'] + 1} failed: {exc}")
                _write_manifest(folder, manifest)
                bar.update(1)
                if not show_progress:
                    log(f"[{done}/{len(todo)}] {cell['label']} #{entry['repeat'] + 1}: {entry['status']}")
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        _write_manifest(folder, manifest)
        raise
    failed = [e for e in manifest["runs"] if e["status"] != "complete"]
    manifest["status"] = "complete" if not failed else "partial"
    manifest["finished_utc"] = _now()
    _write_manifest(folder, manifest)
    return manifest


@dataclass
class Sweep:
    """A sweep as read back: its manifest, its per-cell summary and where its runs are."""

    path: Path
    manifest: dict

    @property
    def summary(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "summary.csv") if (self.path / "summary.csv").exists() else pd.DataFrame()

    @property
    def run_paths(self) -> list[Path]:
        return [self.path / "runs" / e["run"] for e in self.manifest["runs"] if e["status"] == "complete"]

    @property
    def figures(self) -> list[Path]:
        return sorted(self.path.glob("*.png"))


def load_sweep(folder: str | Path) -> Sweep:
    folder = Path(folder)
    return Sweep(folder.resolve(), load_sweep_manifest(folder))


def sweep_runs(folder: Path, manifest: dict) -> list[dict]:
    """The sweep's entries joined with their cells' settings and their runs' summaries."""
    cells = {c["cell"]: c for c in manifest["cells"]}
    out = []
    for entry in manifest["runs"]:
        summary = None
        if entry["status"] == "complete":
            summary = load_run(Path(folder) / "runs" / entry["run"]).summary
        out.append({**entry, "settings": cells[entry["cell"]]["settings"],
                    "label": cells[entry["cell"]]["label"], "summary": summary})
    return out


def summarize_sweep(folder: Path) -> pd.DataFrame:
    """Write summary.csv (one row per cell) and return it."""
    manifest = load_sweep_manifest(folder)
    runs = stats.runs_table(sweep_runs(folder, manifest), manifest["axes"])
    table = stats.cell_stats(runs, manifest["axes"]) if not runs.empty else runs
    labels = {c["cell"]: c["label"] for c in manifest["cells"]}
    if not table.empty:
        table.insert(1, "label", table["cell"].map(labels))
    table.to_csv(Path(folder) / "summary.csv", index=False, float_format="%.6g")
    return table
