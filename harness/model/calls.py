"""A sample of real calls (CALLS=calls.jsonl) and the seeded order in which a run replays it.

One JSON object a line: `{"task": "orders.tasks.render_invoice", "args": [17], "kwargs": {}, "count": 8}`.
`count` repeats a line in the sample (default 1); `weight` instead gives its share of a run whose size TASKS
sets. A run replays the sample in a shuffled order fixed by SEED (the same order for every pool, so every
cell does the same work), or in the file's order with IN_ORDER. Only the standard library: the worker's
interpreter (the user's own environment) reads this module too.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SpecError

# Bounds, so a typo cannot ask for a sample of millions of lines.
MAX_CALL_LINES = 10_000
MAX_COUNT = 100_000
MAX_WEIGHT = 1e6  # shares, so their sum stays a plain float
KEYS = ("task", "args", "kwargs", "count", "weight")


@dataclass(frozen=True)
class Call:
    task: str            # a registered task name (orders.tasks.render_invoice)
    args: list[Any]
    kwargs: dict[str, Any]
    count: int | None    # copies of this call in one pass of the sample
    weight: float | None  # or its share of the run's tasks
    line: int            # where it stands in the file (1-based), for messages

    @property
    def share(self) -> float:
        return self.weight if self.weight is not None else float(self.count or 1)


def _field(where: str, obj: dict[str, Any], key: str, kind: type, noun: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SpecError(f"{where}: {key!r} must be {noun}, got {json.dumps(value)[:60]}")
    return value


def parse_calls(text: str, source: str) -> list[Call]:
    """Every call of a calls.jsonl text; a line that is not one is a SpecError naming `source` and its line."""
    calls: list[Call] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"CALLS {source} line {number}"
        if len(calls) >= MAX_CALL_LINES:
            raise SpecError(f"{where}: a sample holds at most {MAX_CALL_LINES} calls")
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise SpecError(f"{where} is not JSON ({exc.args[0].split(':')[0]}): {raw.strip()[:60]}") from None
        except RecursionError:
            raise SpecError(f"{where} nests too deep to be a call") from None
        if not isinstance(obj, dict):
            raise SpecError(f"{where} must be a JSON object such as {{\"task\": \"app.tasks.name\", \"args\": []}}")
        unknown = sorted(set(obj) - set(KEYS))
        if unknown:
            raise SpecError(f"{where}: unknown key {', '.join(map(repr, unknown))}; allowed: {', '.join(KEYS)}")
        task = obj.get("task")
        if not isinstance(task, str) or not task.strip():
            raise SpecError(f"{where}: 'task' must name a registered task, such as \"orders.tasks.render_invoice\"")
        args = _field(where, obj, "args", list, "a JSON list") or []
        kwargs = _field(where, obj, "kwargs", dict, "a JSON object") or {}
        count = _field(where, obj, "count", int, f"a whole number from 1 to {MAX_COUNT}")
        if count is not None and not 1 <= count <= MAX_COUNT:
            raise SpecError(f"{where}: 'count' must be a whole number from 1 to {MAX_COUNT}, got {count}")
        weight = obj.get("weight")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                                   or not 0 < weight <= MAX_WEIGHT):  # NaN compares false too
            raise SpecError(f"{where}: 'weight' must be a number > 0 and at most {MAX_WEIGHT:g}, "
                            f"got {json.dumps(weight)[:60]}")
        if count is not None and weight is not None:
            raise SpecError(f"{where}: give 'count' or 'weight', not both")
        calls.append(Call(task.strip(), args, kwargs, count, float(weight) if weight is not None else None, number))
    if not calls:
        raise SpecError(f"CALLS {source} holds no call: one JSON object a line, such as "
                        "{\"task\": \"app.tasks.name\", \"args\": [1]}")
    return calls


def load_calls(path: str) -> list[Call]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"CALLS {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"CALLS {path} cannot be read ({exc})") from None
    return parse_calls(text, path)


def sample_size(calls: list[Call]) -> int | None:
    """Tasks in one pass of the sample (its counts), or None where weights say only shares (TASKS sets the size)."""
    if any(c.weight is not None for c in calls):
        return None
    return sum(c.count or 1 for c in calls)


def apportion(calls: list[Call], tasks: int) -> list[int]:
    """How many times each call runs in a run of `tasks` tasks: its share, by largest remainders (a sample's
    own counts when `tasks` is its size)."""
    total = sum(c.share for c in calls)
    exact = [tasks * c.share / total for c in calls]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(calls)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[:tasks - sum(counts)]:
        counts[i] += 1
    return counts


def replay(calls: list[Call], tasks: int, seed: int, in_order: bool) -> list[Call]:
    """The calls a run submits, in order: each apportioned, then shuffled by `seed` unless `in_order`."""
    sequence = [c for c, n in zip(calls, apportion(calls, tasks), strict=True) for _ in range(n)]
    if not in_order:
        random.Random(seed).shuffle(sequence)
    return sequence


def task_names(calls: list[Call]) -> list[str]:
    """The tasks a sample calls, in the order they first appear."""
    return list(dict.fromkeys(c.task for c in calls))
