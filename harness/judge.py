"""What a stored sweep (or run) can be trusted for, and what a sweep decides.

Loads the folder and asks the pure rules (harness.analysis.trust, harness.analysis.decision); the
report, the console and --json all take their cautions and decisions from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.results import is_sweep
from harness.results.records import Status, SweepManifest
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

    runs = sum(e.status == Status.COMPLETE for e in manifest.runs)
    # A sweep stored before cells shared one calibration has none (read as empty): its sized cells each sized
    # their own work.
    cautions = sweep_cautions(manifest.quick, manifest.repeats, runs,
                              marked("disturbed"), str(folder), marked("unsteady"),
                              calibrated_once=bool(manifest.calibrations) or not _sized(manifest))
    decisions = [] if manifest.advisor else decide(table, manifest.cells, sweep.axes, manifest.quick)
    return Judgement(cautions, decisions)


def _sized(manifest: SweepManifest) -> bool:
    """Whether any cell runs fixed work whose size is calibrated (so cells could have run different work): the
    cells' settings as given, not validated again (harness.analysis.stats.cell_spec), the user's own task not."""
    from harness.analysis.stats import cell_spec
    from harness.model.workloads import WORKLOADS

    named = [WORKLOADS.get(spec.workload) for spec in map(cell_spec, manifest.cells) if spec.task is None]
    return any(w is not None and w.calibration is not None for w in named)  # a workload since retired: not known


def disturbed_runs(path: str | Path) -> tuple[int, int]:
    """How many of a run's or sweep's complete runs were disturbed or unsteady, and of how many."""
    from harness.analysis.trust import unreliable

    path = Path(path)
    runs = load_sweep(path).run_paths if is_sweep(path) else [path]
    marks = [unreliable(read_manifest(p).summary) for p in runs]
    return sum(marks), len(marks)
