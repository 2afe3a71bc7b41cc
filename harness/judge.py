"""What a stored sweep (or run) can be trusted for, and what a sweep decides.

Loads the folder and asks the pure rules (harness.analysis.trust, harness.analysis.decision); the
report, the console and --json all take their cautions and decisions from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.results import is_sweep
from harness.results.run_folder import read_manifest
from harness.results.sweep_folder import load_sweep

if TYPE_CHECKING:
    import pandas as pd

    from harness.analysis.decision import Decision


@dataclass(frozen=True)
class Judgement:
    """What a sweep's reader must know first (cautions) and what it ends with (one decision per kind of work)."""

    cautions: list[str]
    decisions: list[Decision]


def judge_sweep(folder: Path, table: pd.DataFrame | None = None) -> Judgement:
    """The cautions and decisions of a stored sweep, from its summary table (harness.analysis.trust, .decision)."""
    from harness.analysis.decision import decide
    from harness.analysis.trust import sweep_cautions

    sweep = load_sweep(folder)
    table = sweep.summary if table is None else table
    manifest = sweep.manifest
    def marked(column: str) -> dict[str, int]:
        return ({row["label"]: int(row[column]) for _, row in table.iterrows() if row[column] > 0}
                if column in table else {})

    runs = sum(e["status"] == "complete" for e in manifest["runs"])
    cautions = sweep_cautions(bool(manifest.get("quick")), int(manifest["experiment"]["repeats"]), runs,
                              marked("disturbed"), str(folder), marked("unsteady"),
                              calibrated_once=manifest.get("calibrations") is not None or not _sized(manifest))
    decisions = [] if manifest.get("advisor") else decide(table, manifest["cells"], sweep.axes,
                                                          bool(manifest.get("quick")))
    return Judgement(cautions, decisions)


def _sized(manifest: dict) -> bool:
    """Whether any cell runs fixed work whose size is calibrated (so cells could have run different work)."""
    from harness.model.workloads import WORKLOADS

    return any(WORKLOADS.get(c["settings"].get("workload")) is not None
               and WORKLOADS[c["settings"]["workload"]].calibration is not None for c in manifest["cells"])


def disturbed_runs(path: str | Path) -> tuple[int, int]:
    """How many of a run's or sweep's complete runs were disturbed or unsteady, and of how many."""
    from harness.analysis.trust import unreliable

    path = Path(path)
    runs = load_sweep(path).run_paths if is_sweep(path) else [path]
    marks = [unreliable(read_manifest(p).get("summary") or {}) for p in runs]
    return sum(marks), len(marks)
