"""Schema versions of the result files, and their upgrade: one `update_to_N` function per version (as asv does).

A loader reads any version up to the current one: it applies each step from the file's version up,
so code past the loader sees only the current layout. A file newer than this lab is refused.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import ResultsError

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


def upgrade(manifest: Any, current: int, steps: dict[int, Upgrade], path: Path) -> dict[str, Any]:
    """`manifest` brought to schema version `current` by `steps[N]` (which makes version N from N - 1)."""
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(f"{path}: no schema_version")
    if version > current:
        raise ResultsError(f"{path}: schema_version {version} is newer than this lab reads ({current}); update the lab")
    for target in range(version + 1, current + 1):
        manifest = {**steps[target](manifest), "schema_version": target}
    return manifest
