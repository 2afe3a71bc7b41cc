"""Checks made before anything starts: can this machine run the pool and the probes a spec asks for?"""
from __future__ import annotations

import subprocess
import sys

from harness.errors import SpecError
from harness.lab import gilprobe
from harness.model.pools import POOLS, pool
from harness.model.spec import RunSpec


def check_pool_importable(name: str, timeout_s: float = 30.0) -> None:
    """A pool's required module (gevent, eventlet) must import where the worker runs, or the run cannot start."""
    module = pool(name).requires_module
    if module is None:
        return
    try:
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", f"import {module}"],
                             capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SpecError(f"pool {name!r}: importing {module} took over {timeout_s:g} s") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        others = [p.name for p in POOLS.values() if p.requires_module is None]
        raise SpecError(f"pool {name!r} needs the {module} package, which does not import here ({last}); "
                        f"install it (pip install {module}) or choose {', '.join(others[:-1])} or {others[-1]}")


def check_gil_probe() -> None:
    try:
        gilprobe.check_available()
        import gilknocker  # noqa: F401  (the worker-side half of the probe)
    except (gilprobe.ProbeUnavailable, ImportError) as exc:
        raise SpecError(f"the GIL probe is not available here: {exc}") from None


def check_can_run(spec: RunSpec) -> None:
    check_pool_importable(spec.pool)
    if spec.gil_probe:
        check_gil_probe()
