"""Result folders, the only code that reads or writes them: runs (run_folder) and sweeps (sweep_folder).

Each kind has one versioned loader that upgrades older schema versions on reading. The loaders (and pandas
with them) are imported when first used, not with the package: `harness.results.paths` is read by every
command, including the ones that only refuse a bad setting.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.results.paths import LATEST

if TYPE_CHECKING:
    from harness.results.run_folder import Run, RunFolder, load_run
    from harness.results.sweep_folder import Sweep, load_sweep

_LAZY = {"Run": "run_folder", "RunFolder": "run_folder", "load_run": "run_folder",
         "Sweep": "sweep_folder", "load_sweep": "sweep_folder"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"harness.results.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_sweep(path: str | Path) -> bool:
    """Whether `path` is a sweep folder (else it is taken for a run folder): decided here only."""
    return (Path(path) / "sweep.json").exists()


def load(path: str | Path = LATEST) -> Run | Sweep:
    """A run folder or a sweep folder, whichever `path` is."""
    from harness.results.run_folder import load_run
    from harness.results.sweep_folder import load_sweep

    return load_sweep(path) if is_sweep(path) else load_run(path)


__all__ = ["Run", "RunFolder", "Sweep", "is_sweep", "load", "load_run", "load_sweep"]
