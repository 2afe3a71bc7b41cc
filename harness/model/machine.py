"""Facts about this machine that the model needs; the full environment record is harness.lab.environment."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on: what parallelism is bounded by."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
