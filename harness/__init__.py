"""The lab's engine: run specs, broker, worker, sampler, results, analysis, plots and the CLI.

Notebooks and reports read runs only through `load_run`, so the file format lives in one place.
"""
from harness.results import Run, RunLoadError, load_run

__all__ = ["Run", "RunLoadError", "load_run"]
