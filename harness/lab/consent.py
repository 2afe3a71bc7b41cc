"""The user's tasks run for real: said before the first one, and agreed to (at a terminal, or --yes / YES=1).

A run of the user's Celery app (APP=) calls their tasks against whatever their settings point at: a database,
a cache, other services. Before any worker starts the lab says so in one line, naming what it can see in the
project's settings, and asks. A script agrees in advance with --yes (YES=1 with make); without it, and without a
terminal to ask at, the run is refused in one line. Asked once per app in a process: a sweep or the advisor
asks before its first run, not before each.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from harness.errors import UsageError
from harness.model.spec import RunSpec

# Set by each command (--yes; make passes it for YES=1): agreed in advance. What was agreed to is kept for the
# rest of that command only (a sweep's runs are asked once): `begin` starts afresh.
assume_yes = False
_agreed: set[str] = set()


def begin(yes: bool) -> None:
    """A new command: agreed in advance only if it says so; nothing agreed before it carries over."""
    global assume_yes
    assume_yes = yes
    _agreed.clear()


def line(spec: RunSpec, app: dict[str, Any]) -> str:
    """The one line said before the user's tasks run."""
    reached = [f"{s['kind']} {s['alias']} ({s['engine']} {s['name']}{' on ' + s['host'] if s['host'] else ''})"
               for s in app.get("services", [])]
    where = "; it reaches " + ", ".join(reached) if reached else ("; no database or cache is named in its settings"
                                                                   if app.get("django") else "")
    tasks = ", ".join(app.get("measured") or spec.app_tasks)
    return (f"APP {spec.app} runs your tasks for real ({tasks}){where}. Its broker and result backend are the "
            "lab's own; everything else is your settings'.")


def agree(spec: RunSpec, app: dict[str, Any], log: Callable[[str], None], ask: Callable[[str], str] = input) -> None:
    """Say what will run, then go on only if agreed: in advance, or at a terminal."""
    said = line(spec, app)
    log(said)
    key = f"{spec.app}@{spec.task_path}@{spec.interpreter}"
    if assume_yes or key in _agreed:
        _agreed.add(key)
        return
    if sys.stdin.isatty() and sys.stderr.isatty():
        try:
            answer = ask("run them? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            _agreed.add(key)
            return
        raise UsageError("not started (answered no)")
    raise UsageError(f"APP {spec.app} runs your tasks for real: give --yes (YES=1 with make) to agree in a script")
