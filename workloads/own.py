"""The user's own task: found by its reference (package.module:function), checked, and described.

The worker imports it once (`load`) and runs it inside the lab's recording like a built-in
workload. Before anything starts the harness runs `python -m workloads.own` on the worker's
interpreter (the user's imports may be heavy or have side effects): it imports the task, checks
that the arguments are accepted by its signature, and prints what run.json records about it.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from typing import Any


class TaskProblem(Exception):
    """What is wrong with the user's task or its arguments, in one line."""


def resolve(reference: str, path: str | None) -> tuple[Callable[..., Any], Any]:
    """The function to call, and the object the reference named (a function, or a Celery task)."""
    module_name, _, attr = reference.partition(":")
    if path and path not in sys.path:
        sys.path.insert(0, path)
    try:
        obj: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # ImportError, or whatever the user's module raised on import
        raise TaskProblem(f"TASK {reference}: cannot import {module_name} from {path or 'the current directory'} "
                          f"({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TaskProblem(f"TASK {reference}: {module_name} has no {attr!r}") from None
    # A Celery task object: what runs is its body (task.run; for bind=True already bound to the task).
    function = obj.run if _is_celery_task(obj) else obj
    if not callable(function):
        raise TaskProblem(f"TASK {reference}: {attr} is a {type(obj).__name__}, not a function or a Celery task")
    return function, obj


def _is_celery_task(obj: Any) -> bool:
    try:
        from celery import Task
    except ImportError:  # pragma: no cover - celery is always there in a worker environment
        return False
    return isinstance(obj, Task)


def check_arguments(reference: str, function: Callable[..., Any], args: list, kwargs: dict) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: its call will tell
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TaskProblem(f"TASK {reference}{signature} does not accept ARGS={json.dumps(args)} "
                          f"KWARGS={json.dumps(kwargs)}: {exc}") from None


def describe(reference: str, path: str | None, args: list, kwargs: dict) -> dict[str, Any]:
    """What run.json records about the task: where its source is and a hash of that file."""
    function, obj = resolve(reference, path)
    check_arguments(reference, function, args, kwargs)
    # A coroutine function (async def): the asyncio pool awaits it; another pool runs it through asyncio.run.
    return {"reference": reference, "path": path, "celery_task": _is_celery_task(obj),
            "coroutine": inspect.iscoroutinefunction(function), **source_of(function)}


def source_of(function: Callable[..., Any]) -> dict[str, Any]:
    """Where a function's code is (file, line, qualified name) and a SHA-256 of its file: what run.json records of
    the user's code (a function of theirs, or a registered task of their app's)."""
    target = inspect.unwrap(getattr(function, "__func__", function))
    try:
        source: str | None = inspect.getsourcefile(target)
        line: int | None = inspect.getsourcelines(target)[1]
    except (TypeError, OSError):
        source, line = None, None
    digest = None
    if source:
        with open(source, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    return {"qualname": getattr(target, "__qualname__", None), "source_file": source, "source_line": line,
            "source_sha256": digest}


def load(reference: str, path: str | None) -> Callable[..., Any]:
    """In the worker: the function to run for each task."""
    return resolve(reference, path)[0]


if __name__ == "__main__":
    # python -m workloads.own REFERENCE PATH ARGS_JSON KWARGS_JSON: its last line is JSON, {"ok": ...}
    # (the user's module may print when imported).
    reference, path, args, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
    try:
        print(json.dumps({"ok": True, "task": describe(reference, path, args, kwargs)}))
    except TaskProblem as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
