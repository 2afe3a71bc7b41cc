"""The user's Celery app, loaded as `celery -A APP worker` loads it, and checked before any worker starts.

    python -m workloads.app_check '{"app": ..., "tasks": [...], "calls": PATH or null, "args": ..., "kwargs": ...}'

Run by the harness on the worker's interpreter (harness.lab.preflight) in the user's project folder, in a child
process with a time limit: the user's imports may be heavy, have side effects, or need that interpreter's
packages. It finds the app (Celery's own find_app), imports its task modules through Celery's loader (which runs
a Django project's fix-up: django.setup(), then autodiscovery), and checks that every task named is registered
and that every call's arguments fit its signature. The last line printed is JSON: {"ok": true, "app": ...} or
{"ok": false, "error": one line}.
"""
from __future__ import annotations

import difflib
import importlib.util
import inspect
import json
import os
import sys
from typing import Any

# What the worker needs in the user's environment beside their own packages: Celery, and the Redis client that
# kombu's Redis transport uses (the lab's broker is Redis).
NEEDED = {"celery": "celery", "redis": "redis", "kombu": "kombu"}


class AppProblem(Exception):
    """What is wrong with the app, a task name or a call, in one line."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_environment() -> None:
    missing = [package for module, package in NEEDED.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise AppProblem(f"the worker's interpreter {sys.executable} has no {' or '.join(missing)}: install "
                         f"{'it' if len(missing) == 1 else 'them'} there (pip install 'celery[redis]')")


def load(reference: str) -> Any:
    """The app, as the celery command finds it, with its task modules imported (Django's fix-up runs then)."""
    from celery.app.utils import find_app

    if os.getcwd() not in sys.path:  # as the celery command's import_from_cwd does
        sys.path.insert(0, os.getcwd())
    try:
        app = find_app(reference)
    except (Exception, SystemExit) as exc:
        raise AppProblem(f"APP {reference} cannot be loaded from {os.getcwd()} ({_one_line(exc)})") from None
    from celery import Celery

    if not isinstance(app, Celery):
        raise AppProblem(f"APP {reference} is a {type(app).__name__}, not a Celery app")
    try:
        app.loader.import_default_modules()
        app.finalize(auto=True)
        list(app.tasks)
    except (Exception, SystemExit) as exc:
        raise AppProblem(f"APP {reference}: importing its tasks failed ({_one_line(exc)})") from None
    return app


# The user's settings that would make the worker listen somewhere the lab does not send (a key prefix on every
# queue) or speak TLS to the lab's private Redis, which has none: refused before the worker starts.
BROKER_CLASHES = {"global_keyprefix": "a key prefix on every queue (broker_transport_options)"}


def check_broker_settings(app: Any, reference: str) -> None:
    options = app.conf.broker_transport_options or {}
    for key, what in BROKER_CLASHES.items():
        if options.get(key):
            raise AppProblem(f"APP {reference} sets {what}, which the lab's private broker cannot follow: run it "
                             f"without {key} for the lab")
    for key in ("broker_use_ssl", "redis_backend_use_ssl"):
        if app.conf.get(key):
            raise AppProblem(f"APP {reference} sets {key}: the lab's private Redis on 127.0.0.1 has no TLS; run it "
                             f"without {key} for the lab")


def registered(app: Any) -> list[str]:
    return sorted(n for n in app.tasks if not n.startswith("celery."))


def _unknown(name: str, names: list[str], where: str) -> AppProblem:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; registered: {', '.join(names[:8])}" + (
        " ..." if len(names) > 8 else "")
    return AppProblem(f"{where}: {name!r} is not a registered task of the app{hint}")


def check_call(app: Any, name: str, args: list, kwargs: dict, where: str) -> None:
    try:
        signature = inspect.signature(app.tasks[name].run)
    except (TypeError, ValueError):  # no signature to read: the call will tell
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise AppProblem(f"{where}: {name}{signature} does not accept args={json.dumps(args)} "
                         f"kwargs={json.dumps(kwargs)} ({exc})") from None


def services() -> list[dict[str, Any]]:
    """The databases and caches a Django project's settings point at: what the user's tasks reach for real."""
    if "django" not in sys.modules:
        return []
    try:
        from django.conf import settings

        databases = dict(settings.DATABASES)
        caches = dict(getattr(settings, "CACHES", {}))
    except Exception:  # settings not configured: not a Django project after all
        return []
    out = []
    for alias, db in databases.items():
        out.append({"kind": "database", "alias": alias, "engine": str(db.get("ENGINE", "")).rsplit(".", 1)[-1],
                    "name": str(db.get("NAME", "")), "host": str(db.get("HOST") or "")})
    for alias, cache in caches.items():
        backend = str(cache.get("BACKEND", "")).rsplit(".", 1)[-1]
        if backend not in ("LocMemCache", "DummyCache"):  # in the process: nothing outside it
            from kombu.utils.url import maybe_sanitize_url

            locations = cache.get("LOCATION", "")
            locations = locations if isinstance(locations, (list, tuple)) else [locations]
            # A Redis cache's location may hold its password: never printed or stored.
            out.append({"kind": "cache", "alias": alias, "engine": backend,
                        "name": ", ".join(maybe_sanitize_url(str(x)) for x in locations), "host": ""})
    return out


def describe_task(app: Any, name: str) -> dict[str, Any]:
    """Where a measured task's code is, and a hash of its file: run.json records it."""
    from workloads.own import source_of

    return source_of(app.tasks[name].run)


def check(request: dict[str, Any]) -> dict[str, Any]:
    check_environment()
    app = load(request["app"])
    check_broker_settings(app, request["app"])
    names = registered(app)
    wanted = list(request.get("tasks") or [])
    for name in wanted:
        if name not in app.tasks:
            raise _unknown(name, names, "TASK")
    for name in request.get("routed") or []:
        if name not in app.tasks:
            raise _unknown(name, names, "ROUTES")
    if request.get("calls"):
        from harness.model.calls import load_calls

        calls = load_calls(request["calls"])
        for call in calls:
            where = f"CALLS {request['calls']} line {call.line}"
            if call.task not in app.tasks:
                raise _unknown(call.task, names, where)
            check_call(app, call.task, call.args, call.kwargs, where)
        used = list(dict.fromkeys(c.task for c in calls))
        missing = [n for n in wanted if n not in used]
        if missing:
            raise AppProblem(f"TASK {', '.join(missing)}: not called in CALLS {request['calls']}")
        wanted = [n for n in used if not wanted or n in wanted]
    else:
        for name in wanted:
            check_call(app, name, request.get("args") or [], request.get("kwargs") or {}, "ARGS/KWARGS")
    django = sys.modules.get("django")
    return {"main": app.main, "registered": names, "measured": wanted,
            "django": getattr(django, "__version__", None) if django else None,
            "django_settings": os.environ.get("DJANGO_SETTINGS_MODULE") if django else None,
            "services": services(), "tasks": {name: describe_task(app, name) for name in wanted}}


if __name__ == "__main__":
    try:
        answer = {"ok": True, "app": check(json.loads(sys.argv[1]))}
    except AppProblem as exc:
        answer = {"ok": False, "error": str(exc)}
    except Exception as exc:  # a SpecError from the calls file: its own one line
        answer = {"ok": False, "error": str(exc) if type(exc).__name__ == "SpecError" else _one_line(exc)}
    print(json.dumps(answer, default=str))
