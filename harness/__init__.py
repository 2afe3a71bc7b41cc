"""The GIL lab: measure Celery's worker pools against the GIL.

Layers, each importing only those listed before it (docs/ARCHITECTURE.md; tests/offline/test_layers.py):
  project   the checkout's root and the oldest Python (with errors: read by every layer)
  model     pools, workloads, run settings, experiments (pure; the worker imports it too)
  results   run and sweep folders: versioned writing, loading and upgrading
  analysis  pure functions: summaries, statistics, comparisons (judge: a sweep's cautions and decisions)
  present   console table, figures, report.html, drawn from stored data
  lab       broker, worker, samplers, probes: one run measured and its raw records stored
  course    the lessons
`pipeline` puts a run's steps in order, `sweeps` and `advisor` run many; `commands` and `cli` are the command line.

Notebooks and scripts read results through `load`, `load_run` and `load_sweep`. They are imported
lazily, so `import harness.model...` (in the worker, or for `make help`) does not pull in pandas.
"""
from __future__ import annotations

from typing import Any

_EXPORTS = {"Run": "harness.results", "Sweep": "harness.results", "load": "harness.results",
            "load_run": "harness.results", "load_sweep": "harness.results", "ResultsError": "harness.errors"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
