"""What every layer may know of the project itself: where its checkout is, and the oldest Python it runs on.

It imports nothing of the lab, so the model, the worker, the Makefile's first check (before any virtual
environment exists) and the presentation may all read it.
"""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The oldest CPython the harness and its workers run on (pyproject.toml's requires-python says the same:
# tests/offline check that they agree).
MIN_PYTHON = (3, 10)
MIN_PYTHON_TEXT = ".".join(map(str, MIN_PYTHON))


def refuse_old_python() -> None:
    """Exit with one line when this interpreter is older than MIN_PYTHON (the Makefile's first step)."""
    import sys

    if sys.version_info < MIN_PYTHON:
        sys.exit(f"the lab needs Python >= {MIN_PYTHON_TEXT}; set PYTHON=python3.X")


if __name__ == "__main__":
    refuse_old_python()
