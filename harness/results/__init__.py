"""Result folders, the only code that reads or writes them: runs (run_folder) and sweeps (sweep_folder).

Each kind has one versioned loader that upgrades older schema versions on reading.
"""
from __future__ import annotations

from pathlib import Path

from harness.results.paths import LATEST
from harness.results.run_folder import Run, RunFolder, load_run
from harness.results.sweep_folder import Sweep, load_sweep


def is_sweep(path: str | Path) -> bool:
    """Whether `path` is a sweep folder (else it is taken for a run folder): decided here only."""
    return (Path(path) / "sweep.json").exists()


def load(path: str | Path = LATEST) -> Run | Sweep:
    """A run folder or a sweep folder, whichever `path` is."""
    return load_sweep(path) if is_sweep(path) else load_run(path)


__all__ = ["Run", "RunFolder", "Sweep", "is_sweep", "load", "load_run", "load_sweep"]
