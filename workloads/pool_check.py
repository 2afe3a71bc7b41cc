"""Can this interpreter run a pool the lab does not start by name? Asked before any worker starts.

    python -m workloads.pool_check custom package.module:Class
    python -m workloads.pool_check interpreters MODULE [PATH]

Run by the harness on the worker's interpreter (harness.lab.preflight), in a child process with a
time limit: the pool class's imports, or a subinterpreter, may crash or hang. The last line printed
is JSON: {"ok": true, ...what run.json records} or {"ok": false, "error": one line}.
"""
from __future__ import annotations

import json
import sys
from typing import Any


class PoolProblem(Exception):
    """What is wrong with the pool here, in one line."""


def check_custom(reference: str) -> dict[str, Any]:
    """The class imports, is a Celery pool, and is not a green one (Celery patches only for gevent/eventlet)."""
    from celery.concurrency.base import BasePool
    from kombu.utils.imports import symbol_by_name

    try:
        cls = symbol_by_name(reference)
    except (Exception, SystemExit) as exc:
        raise PoolProblem(f"pool custom:{reference}: cannot import it ({type(exc).__name__}: {exc})"
                          .replace("\n", " ")) from None
    if not (isinstance(cls, type) and issubclass(cls, BasePool)):
        raise PoolProblem(f"pool custom:{reference}: {reference} is not a Celery pool class "
                          "(a subclass of celery.concurrency.base.BasePool)")
    if getattr(cls, "is_green", False):
        raise PoolProblem(f"pool custom:{reference}: a green pool runs only with the monkey-patching Celery does for "
                          "its own names: use POOL=gevent or POOL=eventlet")
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "is_green": False,
            "celery_module_file": sys.modules[cls.__module__].__file__}


def check_interpreters(module: str, path: str | None) -> dict[str, Any]:
    """One subinterpreter made, and the task's module imported in it, as the pool will at start.
    (Which Pythons can run the pool at all is the pool record's rule, checked before this.)"""
    try:
        from workloads import interpreter_pool
    except ImportError as exc:
        raise PoolProblem(f"pool interpreters: PEP 734's API is missing here ({exc}); on 3.13 it comes from "
                          "pip install interpreters-pep-734") from None
    try:
        return interpreter_pool.start(1, module, path, timeout_s=60)
    except (interpreter_pool.SubinterpreterError, TimeoutError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise PoolProblem(f"pool interpreters: {module} cannot be imported in a subinterpreter ({message}); "
                          "a C extension without subinterpreter support cannot run there: use prefork or "
                          "threads") from None
    finally:
        interpreter_pool.stop(wait=False)


if __name__ == "__main__":
    try:
        if sys.argv[1] == "custom":
            found = check_custom(sys.argv[2])
        else:
            found = check_interpreters(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
        print(json.dumps({"ok": True, "pool": found}))
    except PoolProblem as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
    sys.stdout.flush()
