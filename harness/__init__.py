"""The lab's engine: run specs, broker, worker, sampler, results, analysis, plots and the CLI.

Notebooks and reports read results only through `load_run`, `load_sweep` or `load`, so the file
formats live in one place.
"""
from __future__ import annotations

from pathlib import Path

from harness.results import Run, RunLoadError, load_run
from harness.sweep import Sweep, load_sweep


def load(path: str | Path = "results/latest") -> Run | Sweep:
    """A run folder or a sweep folder, whichever `path` is."""
    path = Path(path)
    return load_sweep(path) if (path / "sweep.json").exists() else load_run(path)


__all__ = ["Run", "RunLoadError", "Sweep", "load", "load_run", "load_sweep"]
