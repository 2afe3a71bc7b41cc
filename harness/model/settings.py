"""Every run setting, declared once: name, type, default, help, validation, make variable.

The CLI's flags, the experiment files' keys, `make help`, the make variables `make bench` reads
and the worker's LAB_* environment are all derived from SETTINGS. `python -m harness.model.settings`
prints the make variables (that is what `make help` shows).
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import SpecError
from harness.model import arrivals
from harness.model.brokers import BROKER_NAMES
from harness.model.drivers import DEFAULT_DRIVERS, DRIVER_NAMES, driver
from harness.model.hosts import parse_hosts
from harness.model.machine import usable_cores
from harness.model.pools import CUSTOM_PREFIX, POOL_NAMES, POOLS, pool
from harness.model.workloads import BACKGROUND_WORKLOADS, DB_QUERIES, WITH_CPU_FRACTION, WORKLOAD_NAMES, workload

# Physical bounds, so a typo cannot ask for a run of days, a sampler that never samples or a switch
# interval Python would not keep (sys.setswitchinterval takes values far above these silently).
MAX_SAMPLE_HZ = 1000.0
MIN_SAMPLE_HZ = 1.0
MAX_WORKERS = 64
MAX_CONCURRENCY = 10_000   # gevent at 1,000 is measured (BENCHMARKS.md); ten times that is no longer a lab run
MAX_TASKS = 100_000        # ten times the load benchmark's 10,000
MAX_DURATION_S = 3600.0    # one task alone: an hour
MAX_SWITCH_INTERVAL_S = 100.0  # the switch-interval experiment goes to 10 s
MAX_TIMEOUT_S = 86_400.0   # a day
MAX_PREFETCH = 1000


def at_most(parse: Callable[[str, Any], Any], maximum: float, why: str) -> Callable[[str, Any], Any]:
    """`parse`, then an upper bound with its reason."""
    def bounded(name: str, raw: Any) -> Any:
        value = parse(name, raw)
        if value is not None and value > maximum:
            raise SpecError(f"{name} must be at most {maximum:g} ({why}), got {raw!r}")
        return value
    return bounded


def at_least(parse: Callable[[str, Any], Any], minimum: float, why: str) -> Callable[[str, Any], Any]:
    def bounded(name: str, raw: Any) -> Any:
        value = parse(name, raw)
        if value is not None and value < minimum:
            raise SpecError(f"{name} must be at least {minimum:g} ({why}), got {raw!r}")
        return value
    return bounded


def whole(minimum: int, maximum: int | None = None) -> Callable[[str, Any], int]:
    def parse(name: str, raw: Any) -> int:
        text = str(raw).strip()
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        try:
            value = int(text)
        except ValueError:
            raise SpecError(f"{name} must be a whole number {bounds}, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise SpecError(f"{name} must be a whole number {bounds}, got {raw!r}")
        return value
    return parse


def positive(unit: str = "seconds", maximum: float = math.inf) -> Callable[[str, Any], float]:
    def parse(name: str, raw: Any) -> float:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise SpecError(f"{name} must be a number > 0 ({unit}), got {raw!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise SpecError(f"{name} must be a number > 0 ({unit}), got {raw!r}")
        if value > maximum:
            raise SpecError(f"{name} must be at most {maximum:g}, got {value:g}")
        return value
    return parse


def text(name: str, raw: Any) -> str:
    value = str(raw).strip()
    if not value:
        raise SpecError(f"{name} must not be empty")
    return value


def on_off(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "yes", "true", "on"):
        return True
    if text in ("", "0", "no", "false", "off"):
        return False
    raise SpecError(f"{name} must be on or off (1/0, yes/no), got {raw!r}")


def fraction(name: str, raw: Any) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise SpecError(f"{name} must be a number from 0 to 1, got {raw!r}") from None
    if not 0 <= value <= 1:
        raise SpecError(f"{name} must be a number from 0 to 1, got {raw!r}")
    return value


_TASK_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_DOTTED = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$")
_APP_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")


def task_reference(name: str, raw: Any) -> str:
    """package.module:function (a function of the user's), or with APP registered task names, comma-separated
    (which of the two is the spec's rule: harness.model.spec)."""
    value = str(raw).strip()
    if _TASK_REF.match(value):
        return value
    names = [part.strip() for part in value.split(",")]
    if all(_DOTTED.match(part) for part in names):
        return ",".join(dict.fromkeys(names))
    raise SpecError(f"{name} must be package.module:function (a module to import, a colon, a name in it), or with "
                    f"APP registered task names such as orders.tasks.render_invoice, comma-separated; got {raw!r}")


def app_reference(name: str, raw: Any) -> str:
    value = str(raw).strip()
    if not _APP_REF.match(value):
        raise SpecError(f"{name} must name a Celery app as `celery -A` takes it: proj, proj.celery or "
                        f"proj.celery:app; got {raw!r}")
    return value


def calls_file(name: str, raw: Any) -> str:
    """The path of a calls.jsonl, read and checked line by line (harness.model.calls)."""
    from harness.model.calls import load_calls

    path = directory(name, raw)
    load_calls(path)
    return path


def routes(name: str, raw: Any) -> str:
    """task=pool:concurrency entries (separated by ';', ',' or spaces), in one canonical form."""
    entries = [e for e in re.split(r"[;,\s]+", str(raw).strip()) if e]
    if not entries:
        raise SpecError(f"{name} must not be empty")
    out = []
    for entry in entries:
        task, _, where = entry.partition("=")
        pool_text, _, concurrency = where.rpartition(":")
        if not _DOTTED.match(task) or not pool_text or not concurrency:
            raise SpecError(f"{name}: {entry!r} must be task=pool:concurrency, such as "
                            "orders.tasks.render_invoice=prefork:2")
        chosen = pool_name(f"{name} pool", pool_text)
        slots = at_most(whole(1), MAX_CONCURRENCY, "slots per worker")(f"{name} concurrency", concurrency)
        out.append(f"{task}={chosen}:{slots}")
    tasks = [e.partition("=")[0] for e in out]
    if len(set(tasks)) < len(tasks):
        raise SpecError(f"{name} routes a task twice: {raw!r}")
    return ";".join(out)


def did_you_mean(value: str, allowed: tuple[str, ...] | list[str]) -> str:
    """' (did you mean 'threads'?)' for a near miss, else nothing."""
    close = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def pool_name(name: str, raw: Any) -> str:
    """One of the lab's pools, or custom:package.module:Class for any Celery pool class."""
    value = str(raw).strip()
    if value in POOL_NAMES:
        return value
    allowed = f"allowed: {', '.join(POOL_NAMES)}, or {CUSTOM_PREFIX}package.module:Class (a Celery pool class)"
    if value.startswith(CUSTOM_PREFIX):
        if not _TASK_REF.match(value[len(CUSTOM_PREFIX):]):
            raise SpecError(f"{name} {raw!r}: a custom pool is {CUSTOM_PREFIX}package.module:Class")
        return value
    raise SpecError(f"unknown {name} {raw!r}{did_you_mean(value, POOL_NAMES)}; {allowed}")


def json_of(kind: type[list] | type[dict]) -> Callable[[str, Any], str]:
    """JSON text of a list or an object (given as text, or as the value itself from code), kept compact."""
    noun = {list: "a JSON list, such as '[1, \"a\"]'", dict: "a JSON object, such as '{\"n\": 3}'"}[kind]

    def parse(name: str, raw: Any) -> str:
        if isinstance(raw, str):
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise SpecError(f"{name} must be {noun}; {raw!r} is not JSON ({exc.args[0].split(':')[0]})") from None
        else:
            value = raw
        if not isinstance(value, kind):
            raise SpecError(f"{name} must be {noun}, got {raw!r}")
        try:
            return json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            raise SpecError(f"{name} must be {noun}, got {raw!r}") from None
    return parse


def directory(name: str, raw: Any) -> str:
    return os.path.abspath(os.path.expanduser(text(name, raw)))


def one_of(allowed: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        value = str(raw).strip()
        if value not in allowed:
            raise SpecError(f"unknown {name} {raw!r}{did_you_mean(value, allowed)}; allowed: {', '.join(allowed)}")
        return value
    return parse


def _names(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def _is_load(v: dict[str, Any]) -> bool:
    """An open-loop run: a RATE, or a burst pattern (which implies one)."""
    return v.get("rate") is not None or str(v.get("arrivals") or "").startswith("burst:")


def _arrivals(name: str, raw: Any) -> str:
    arrivals.parse(str(raw))  # one line naming the allowed patterns, or nothing
    return str(raw).strip()


def non_negative(name: str, raw: Any) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise SpecError(f"{name} must be a number >= 0 (seconds), got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise SpecError(f"{name} must be a number >= 0 (seconds), got {raw!r}")
    return value


# An open-loop run's arrivals when LOAD_TIME is not given, and the warm-up left out of its latency figures.
DEFAULT_LOAD_TIME_S = 10.0
DEFAULT_WARMUP_S = 2.0


@dataclass(frozen=True)
class Setting:
    name: str          # the RunSpec field and the experiment-file key
    type: type         # what an experiment file must give: str, int, float or bool
    default: Any       # None: derived from the other settings (`derive`), or none at all
    help: str
    parse: Callable[[str, Any], Any]
    make: str          # the make variable of `make bench`
    label: str = ""    # how error messages name it; the name with spaces by default
    to_worker: bool = False  # the worker needs it: passed as LAB_<NAME> (see workloads.protocol)
    flag_only: bool = False  # a switch on the command line (`--gil-probe`), not `--x VALUE`
    # A default that follows from the settings before it (build_spec applies it, in SETTINGS's order), and how
    # the help says it; `derived` alone: decided later, by what the help says (the run's deadline).
    derive: Callable[[dict[str, Any]], Any] | None = None
    derived: str = ""

    @property
    def default_text(self) -> str:
        """How a help text says the default: " (default 0.25)", " (default: the number of usable CPU cores)"."""
        if self.derived:
            return f" (default: {self.derived})"
        if self.default is None:
            return ""
        return f" (default {str(self.default).lower() if self.type is bool else self.default})"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def what(self) -> str:
        return self.label or self.name.replace("_", " ")

    def validate(self, raw: Any) -> Any:
        """The setting's value from raw input (a string from the CLI or make, a value from code or TOML).

        Left out (None) means the default; so does an empty value for a setting whose default is
        derived from the others (concurrency, tasks, prefetch, ...). An empty pool or duration, or a
        value of spaces, is an error.
        """
        if raw is None or (self.default is None and raw == ""):
            return self.default
        return self.parse(self.what, raw)


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("pool", str, "threads", f"worker pool: {', '.join(POOL_NAMES)}, or {CUSTOM_PREFIX}package.module:Class",
            pool_name, "POOL", to_worker=True),
    Setting("workload", str, "cpu", f"task kind: {', '.join(WORKLOAD_NAMES)}", one_of(WORKLOAD_NAMES), "WORKLOAD"),
    Setting("app", str, None, "your Celery app, as `celery -A` takes it (proj, or proj.celery:app), run by its own "
            "worker with your settings; TASK then names registered tasks and CALLS replays a sample",
            app_reference, "APP", label="APP", to_worker=True),
    Setting("calls", str, None, "with APP: a sample of real calls, a JSONL file of {\"task\", \"args\", \"kwargs\", "
            "\"count\" or \"weight\"} lines, replayed in a seeded shuffled order", calls_file, "CALLS",
            label="CALLS"),
    Setting("concurrency", int, None, "pool size", at_most(whole(1), MAX_CONCURRENCY, "slots per worker"),
            "CONCURRENCY", to_worker=True, derive=lambda v: usable_cores(), derived="the number of usable CPU cores"),
    Setting("workers", int, 1, f"worker processes on the run's queue, each with CONCURRENCY slots (at most "
            f"{MAX_WORKERS}); with HOSTS, every host's together", whole(1, MAX_WORKERS), "WORKERS", to_worker=True),
    Setting("hosts", str, None, "agents' names, comma-separated: the workers run on those hosts (`gil-lab agent "
            "--name NAME` on each; the fleet's broker in LAB_FLEET_BROKER, its secret's file in LAB_FLEET_SECRET_FILE)",
            parse_hosts, "HOSTS", label="HOSTS"),
    Setting("workers_per_host", int, None, "with HOSTS: worker processes on each host", whole(1, MAX_WORKERS),
            "WORKERS_PER_HOST", label="WORKERS_PER_HOST", derive=lambda v: 1 if v["hosts"] else None,
            derived="1 with HOSTS"),
    Setting("seed", int, 0, "the seed of CALLS's shuffled order and of Poisson arrivals (the same for every pool, so "
            "each does the same work)", whole(0), "SEED"),
    # Open-loop load (harness.model.arrivals): tasks submitted on a schedule, not as one batch.
    Setting("rate", float, None, "open-loop load (make load): tasks per second offered, on a schedule kept whatever "
            "the worker does", positive("tasks per second", arrivals.MAX_RATE), "RATE", label="RATE"),
    Setting("arrivals", str, None, f"with RATE: how tasks arrive: constant, poisson (seeded by SEED) or "
            f"{arrivals.BURST_FORM} (then RATE may be left out)", _arrivals, "ARRIVALS", label="ARRIVALS",
            derive=lambda v: "constant" if v["rate"] is not None else None, derived="constant with RATE"),
    Setting("load_time", float, None, "with RATE: seconds over which tasks arrive", positive(
            maximum=arrivals.MAX_LOAD_TIME_S), "LOAD_TIME", label="LOAD_TIME",
            derive=lambda v: DEFAULT_LOAD_TIME_S if _is_load(v) else None,
            derived=f"{DEFAULT_LOAD_TIME_S:g} with RATE"),
    Setting("warmup", float, None, "with RATE: the first seconds of arrivals, left out of the latency figures",
            non_negative, "WARMUP", label="WARMUP",
            derive=lambda v: min(DEFAULT_WARMUP_S, 0.2 * v["load_time"]) if _is_load(v) else None,
            derived=f"{DEFAULT_WARMUP_S:g} s or a fifth of LOAD_TIME with RATE"),
    Setting("tasks", int, None, "number of measured tasks", at_most(whole(1), MAX_TASKS, "tasks in one run"), "TASKS",
            derive=lambda v: _sample_tasks(v), derived="RATE x LOAD_TIME with RATE; the CALLS sample's size; else 4 x "
            "concurrency x workers"),
    Setting("duration", float, 0.25, "seconds each task takes alone (not for TASK: yours takes what it takes)",
            positive(maximum=MAX_DURATION_S), "DURATION"),
    Setting("cpu_fraction", float, None, f"{' and '.join(WITH_CPU_FRACTION)} workload: the share of a task's time "
            "alone that is CPU, 0 to 1", fraction, "CPU_FRACTION", label="CPU fraction",
            derive=lambda v: workload(v["workload"]).default_cpu_fraction,
            derived=", ".join(f"{n} {workload(n).default_cpu_fraction:g}" for n in WITH_CPU_FRACTION)),
    Setting("task", str, None, "your own task, package.module:function (a Celery task object works too); it "
            "becomes the workload", task_reference, "TASK", label="TASK", to_worker=True),
    Setting("args", str, None, "your task's positional arguments, a JSON list (default [])", json_of(list), "ARGS",
            label="ARGS"),
    Setting("kwargs", str, None, "your task's keyword arguments, a JSON object (default {})", json_of(dict),
            "KWARGS", label="KWARGS"),
    Setting("task_path", str, None, "where your task's package (or APP's project) is imported from (default: the "
            "current directory)", directory, "TASK_PATH", label="TASK_PATH", to_worker=True),
    Setting("in_order", bool, False, "replay CALLS in the file's order, not shuffled", on_off, "IN_ORDER",
            flag_only=True),
    Setting("routes", str, None, "with APP: tasks run by workers of their own, one per pool:concurrency, each on its "
            "own queue, the rest on POOL: 'orders.tasks.render_invoice=prefork:2' (several separated by ';')",
            routes, "ROUTES", label="ROUTES"),
    Setting("driver", str, None, "the db or http workload's client: " + "; ".join(
                f"{kind}: {', '.join(n for n in DRIVER_NAMES if driver(n).kind == kind)}" for kind in DEFAULT_DRIVERS),
            one_of(DRIVER_NAMES), "DRIVER", label="DRIVER", to_worker=True,
            derive=lambda v: DEFAULT_DRIVERS.get(workload(v["workload"]).driver_kind or ""),
            derived=", ".join(f"{d} for {kind}" for kind, d in DEFAULT_DRIVERS.items())),
    Setting("db_query", str, None, "the db workload's query: wait (pg_sleep of DURATION, then an indexed read) or scan "
            "(sequential scans that cost the server about DURATION of CPU, while the task waits)",
            one_of(DB_QUERIES), "DB_QUERY", label="DB_QUERY",
            derive=lambda v: "wait" if workload(v["workload"]).needs_db else None, derived="wait for db"),
    Setting("switch_interval", float, 0.005, "sys.setswitchinterval, set in every process that runs tasks",
            positive(maximum=MAX_SWITCH_INTERVAL_S), "SWITCH", to_worker=True),
    Setting("prefetch", int, None, "worker_prefetch_multiplier", at_most(whole(0), MAX_PREFETCH,
            "messages reserved per slot"), "PREFETCH", to_worker=True,
            derive=lambda v: None if v["app"] else pool(v["pool"]).default_prefetch,
            derived="your app's own with APP; " + "; ".join(f"{n or '0 = no limit'} for "
                              f"{_names([p for p in POOL_NAMES if POOLS[p].default_prefetch == n])}"
                              for n in sorted({p.default_prefetch for p in POOLS.values()}, reverse=True))),
    Setting("broker", str, "redis", "the task broker: redis (a private Redis, or REDIS_URL) or rabbitmq (a private "
            "RabbitMQ node); the lab's own records travel on its Redis either way", one_of(BROKER_NAMES), "BROKER",
            label="BROKER", to_worker=True),
    Setting("sample_hz", float, 50.0, "CPU samples of the worker per second",
            at_least(positive("Hz", MAX_SAMPLE_HZ), MIN_SAMPLE_HZ, "fewer would miss short runs"),
            "SAMPLE_HZ", label="sample rate (Hz)"),
    Setting("timeout", float, None, "seconds the tasks may take before the run is called stuck",
            positive(maximum=MAX_TIMEOUT_S), "TIMEOUT", derived="derived from the work"),
    Setting("background", str, None, f"a workload run beside the measured tasks: {', '.join(BACKGROUND_WORKLOADS)}",
            lambda name, raw: None if str(raw).strip() == "none" else one_of(BACKGROUND_WORKLOADS)(name, raw),
            "BACKGROUND", label="background workload"),
    Setting("background_tasks", int, 0, "how many background tasks (1 when a background workload is given)",
            at_most(whole(0), MAX_TASKS, "tasks in one run"), "BACKGROUND_TASKS"),
    Setting("interpreter", str, None, "the Python the worker runs on: a path, or a name on PATH such as python3.13t "
            "(default: the lab's own); another interpreter gets a worker environment, made once in .lab/envs/",
            text, "INTERPRETER"),
    Setting("gil", str, None, "on or off: the GIL of a free-threaded worker, as PYTHON_GIL=1/0 (default: the "
            "build's own)", one_of(("on", "off")), "GIL", label="GIL setting"),
    Setting("gil_probe", bool, False, "also record who held the GIL (1 kHz, from the harness) and GIL contention "
            "(gilknocker, in the worker); writes gil.png", on_off, "GIL_PROBE", to_worker=True, flag_only=True),
    Setting("events", bool, False, "the worker sends Celery's task events, so Flower (or `celery events`) can "
            "watch the run; off by default: they cost broker traffic (see BENCHMARKS.md)", on_off, "EVENTS",
            to_worker=True, flag_only=True),
)}


def _sample_tasks(v: dict[str, Any]) -> int:
    """TASKS by default: the schedule's arrivals (RATE x LOAD_TIME), one pass of the CALLS sample where it has counts,
    else 4 tasks per slot."""
    if _is_load(v):
        pattern = arrivals.parse(v["arrivals"])
        rate = pattern.burst_rate or v["rate"]
        return arrivals.count(pattern, rate, v["load_time"], v["seed"])
    if v.get("calls"):
        from harness.model.calls import load_calls, sample_size

        size = sample_size(load_calls(v["calls"]))
        if size is not None:
            if size > MAX_TASKS:
                raise SpecError(f"CALLS {v['calls']}: its counts add up to {size} tasks, more than {MAX_TASKS} in one "
                                "run; give TASKS to replay a share of it")
            return size
    return 4 * v["concurrency"] * total_workers(v)


def total_workers(v: dict[str, Any]) -> int:
    """The run's worker processes: WORKERS, or with HOSTS, WORKERS_PER_HOST on each host."""
    return len(v["hosts"].split(",")) * v["workers_per_host"] if v.get("hosts") else v["workers"]


def from_environment(environ: dict[str, str]) -> dict[str, str]:
    """The settings given as make variables (make exports command-line variables to its recipes)."""
    return {s.name: environ[s.make] for s in SETTINGS.values() if environ.get(s.make, "").strip()}


def make_help() -> str:
    width = max(len(s.make) for s in SETTINGS.values())
    lines = ["  settings of bench (make variables; the same as python -m harness bench flags):"]
    for s in SETTINGS.values():
        lines.append(f"    {s.make:<{width}}  {s.help}{s.default_text}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(make_help() + "\n")
