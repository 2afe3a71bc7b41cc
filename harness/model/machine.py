"""Facts about this machine that the model needs; the full environment record is harness.lab.environment."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on: what parallelism is bounded by."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def boot_id() -> str | None:
    """This machine's boot id (Linux): processes that share it run on one machine's cores, whatever their network
    namespace or container (harness.model.hosts.fleet_cores)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None
