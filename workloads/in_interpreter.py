"""What runs inside a subinterpreter of the interpreters pool: find the task's function, call it, measure it.

Standard library only: a subinterpreter imports its own copy of every module, and C extensions
without subinterpreter support (psutil, greenlet, ...) refuse to load there. Everything that leaves
this module crosses interpreters by pickle, so `call` returns plain data and raises only plain
exceptions: the backport's InterpreterPoolExecutor waits for ever (spinning) when a result or an
error cannot be pickled back (interpreters-pep-734 0.5.0, WorkerContext.run).
"""
from __future__ import annotations

import importlib
import inspect
import pickle
import sys
import threading
import time
import types
from typing import Any


def find(module: str, qualname: str | None, path: str | None = None) -> Any:
    """The function named by module and qualname (a Celery task object: its body, `run`); None: import only."""
    if path and path not in sys.path:
        sys.path.insert(0, path)
    obj: Any = importlib.import_module(module)
    if qualname is None:
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part)
    # A Celery task object is found by duck typing: importing celery here to ask would load it in every
    # subinterpreter, for nothing.
    if not isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)) and callable(getattr(obj, "run", None)):
        obj = obj.run
    return obj


def interpreter_id() -> int:
    import _interpreters  # the low-level module (3.13+; the backport on 3.13 puts it in place)

    return int(_interpreters.get_current()[0])


def call(module: str, qualname: str | None, path: str | None, args: list, kwargs: dict) -> dict[str, Any]:
    """Run the function once and say how: its result (when it can cross back), own CPU, clock times, thread."""
    try:
        function = find(module, qualname, path)
        # A coroutine function: this pool cannot await it, so a loop of its own per call (asyncio.run), marked.
        coroutine = inspect.iscoroutinefunction(function)
        started, cpu0 = time.time(), time.thread_time()
        if coroutine:
            import asyncio

            result = asyncio.run(function(*args, **kwargs))
        else:
            result = function(*args, **kwargs) if function is not None else None
        cpu_s, finished = time.thread_time() - cpu0, time.time()
    except BaseException as exc:  # made plain, so it can be pickled back whatever it was
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
    try:
        pickle.dumps(result)
    except Exception:
        result = None  # the lab uses a result only when it is a dict of numbers (io_net's)
    return {"result": result, "cpu_s": cpu_s, "started": started, "finished": finished,
            "thread_id": threading.get_native_id(), "interpreter_id": interpreter_id(),
            **({"ran": "asyncio.run"} if coroutine else {})}
