"""Checks made before anything starts: can this machine run the pool and the probes a spec asks for?"""
from __future__ import annotations

import subprocess
import sys

from typing import Callable

from harness.errors import SpecError
from harness.lab import gilprobe
from harness.lab.interpreters import Interpreter, worker_interpreter
from harness.model.pools import POOLS, pool
from harness.model.spec import RunSpec


def check_pool_importable(name: str, interpreter: Interpreter | None = None, timeout_s: float = 30.0) -> None:
    """A pool's required module (gevent, eventlet) must import where the worker runs, or the run cannot start."""
    module = pool(name).requires_module
    if module is None:
        return
    python = interpreter.python if interpreter else sys.executable
    if interpreter is not None and module in interpreter.missing:
        raise SpecError(f"pool {name!r} cannot run on {interpreter.label} ({interpreter.requested}): {module} could "
                        f"not be installed there ({interpreter.missing[module]})")
    try:
        out = subprocess.run([python, "-W", "ignore", "-c", f"import {module}"],
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


def check_gil_setting(spec: RunSpec, interpreter: Interpreter) -> None:
    if spec.gil is not None and not interpreter.free_threaded:
        raise SpecError(f"GIL={spec.gil} needs a free-threaded build (such as python3.13t); the worker's "
                        f"{interpreter.label} always has the GIL")


def check_can_run(spec: RunSpec, log: Callable[[str], None] = print) -> Interpreter:
    """Everything that can be known before a broker or worker starts; returns the worker's interpreter."""
    interpreter = worker_interpreter(spec.interpreter, log)
    check_gil_setting(spec, interpreter)
    check_pool_importable(spec.pool, interpreter)
    if spec.gil_probe:
        check_gil_probe()
    return interpreter
