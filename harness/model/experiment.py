"""Experiments as data: a TOML file declaring a question, its axes, fixed settings and repeats.

    name = "pools"
    question = "How do the five pools compare ...?"
    repeats = 3
    [fixed]                       # settings every cell shares
    concurrency = 2
    [axes]                        # one cell per combination of these values
    pool = ["prefork", "threads"]
    workload = ["cpu", "io_sleep"]
    [quick]                       # overrides for --quick: repeats, fixed values, or axis lists
    repeats = 1
    duration = 0.1
    [[skip]]                      # cells left out: every cell whose axes have all these values
    pool = "prefork"
    concurrency = 1000

A setting is any run setting (harness.model.settings.SETTINGS, by the same name). `concurrency`
may also be "cores" or "N*cores", resolved on the machine that runs the sweep, or "N/workers": N
slots shared among the cell's workers (topologies such as 1x4, 2x2, 4x1 with workers = [1, 2, 4], or across hosts
with hosts = ["a", "a,b", "a,b,c,d"]).
Every cell is validated, as a RunSpec, before any worker starts.

A capacity experiment (`make capacity EXP=experiments/capacity.toml`) adds `slo = "p95<1s"`: each cell is then a
capacity search (harness.capacity) under that objective, not a batch, and `make sweep` refuses the file.
"""
from __future__ import annotations

import itertools
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from harness.errors import ExperimentError, SpecError
from harness.model.machine import usable_cores
from harness.model.settings import SETTINGS, total_workers
from harness.model.slo import parse as parse_slo
from harness.model.spec import RunSpec, build_spec

TOP_KEYS = ("name", "question", "repeats", "fixed", "axes", "quick", "slo", "skip")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
# Bounds of a sweep: a typo should not start days of runs or a sweep.json of a hundred megabytes.
# Settings that define the work itself; every other axis (pool, concurrency, workers, prefetch, switch
# interval, ...) is a way to run it. A sweep's decision chooses among the ways for each work
# (harness.analysis.decision), and its runs are ordered so that each way runs near its work's solo baseline.
WORK_SETTINGS = ("workload", "app", "task", "args", "kwargs", "calls", "seed", "in_order", "cpu_fraction", "background",
                 "interpreter", "gil")


def work_key(settings: dict[str, Any]) -> tuple[str, ...]:
    """The work a cell's settings run, as a key: cells with equal keys ran the same work."""
    return tuple(str(settings.get(k)) for k in WORK_SETTINGS)


MAX_REPEATS = 100
MAX_RUNS = 2000
_CORES = re.compile(r"^\s*(?:(\d+)\s*\*\s*)?cores\s*$")
_PER_WORKER = re.compile(r"^\s*(\d+)\s*/\s*workers\s*$")


@dataclass
class Experiment:
    path: str
    name: str
    question: str
    repeats: int
    fixed: dict[str, Any]
    axes: dict[str, list]
    quick: dict[str, Any] = field(default_factory=dict)
    # The cells to run, where not every combination of the axes makes sense (the advisor runs solo
    # at concurrency 1 only): each gives a value for every axis. None: every combination.
    only: list[dict[str, Any]] | None = None
    slo: str | None = None  # a capacity experiment's objective (harness.model.slo): each cell is a capacity search
    # Cells left out (a thousand prefork processes): each rule names axis values, and a cell that has them all is
    # not run.
    skip: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "question": self.question, "repeats": self.repeats,
                "fixed": self.fixed, "axes": self.axes, "quick": self.quick, "only": self.only, "slo": self.slo,
                "skip": self.skip}

    def shrunk(self) -> Experiment:
        """The --quick version: the [quick] table applied, one repeat unless it says otherwise."""
        fixed, axes = dict(self.fixed), dict(self.axes)
        for key, value in self.quick.items():
            if key == "repeats":
                continue
            if key in axes:
                axes[key] = value if isinstance(value, list) else [value]
            else:
                fixed[key] = value
        return Experiment(self.path, self.name, self.question, int(self.quick.get("repeats", 1)),
                          fixed, axes, {}, self.only, self.slo, self.skip)

    def cells(self) -> list[dict[str, Any]]:
        """Every combination of the axes' values, merged with the fixed settings, machine-resolved."""
        names = list(self.axes)
        seen, out = set(), []
        combos = ([tuple(cell[n] for n in names) for cell in self.only] if self.only is not None
                  else itertools.product(*(self.axes[n] for n in names)))
        for combo in combos:
            settings = {**self.fixed, **dict(zip(names, combo, strict=False))}
            if any(all(settings.get(k) == v for k, v in rule.items()) for rule in self.skip):
                continue
            if "driver" in self.axes and not _driver_fits(settings):
                continue  # a db driver on the http workload, psycogreen off a green pool: no such run
            if "concurrency" in settings:
                settings["concurrency"] = resolve_concurrency(settings["concurrency"], workers=_workers(settings))
            key = tuple(sorted((k, str(v)) for k, v in settings.items()))
            if key not in seen:  # "cores" and 2 can be the same cell on a 2-core machine
                seen.add(key)
                out.append(settings)
        return out

    def specs(self) -> list[RunSpec]:
        return [build_spec(**cell) for cell in self.cells()]


def _workers(settings: dict[str, Any]) -> Any:
    """A cell's workers, among which "N/workers" shares its slots: WORKERS, or with HOSTS, WORKERS_PER_HOST on each."""
    hosts, per_host = settings.get("hosts"), settings.get("workers_per_host", 1)
    if not (isinstance(hosts, str) and hosts.strip() and isinstance(per_host, int)):
        return settings.get("workers", 1)  # (a bad value is left to the cell's validation to refuse)
    return total_workers({"hosts": hosts, "workers_per_host": per_host})


def _driver_fits(settings: dict[str, Any]) -> bool:
    """A driver axis crossed with workloads and pools: the combinations a run can have (drivers.fits). Settings
    that name no known workload or pool are left to build_spec to refuse."""
    from harness.model.drivers import DRIVERS, fits
    from harness.model.pools import POOLS
    from harness.model.workloads import WORKLOADS

    name, work, pool = settings.get("driver"), settings.get("workload", "cpu"), settings.get("pool", "threads")
    if name not in DRIVERS or work not in WORKLOADS or pool not in POOLS:
        return True
    return fits(name, WORKLOADS[work].driver_kind, POOLS[pool].green, POOLS[pool].awaits)


def cell_label(settings: dict[str, Any], axes: list[str]) -> str:
    return " ".join(f"{name}={settings[name]}" for name in axes)


def resolve_concurrency(value: Any, cores: int | None = None, workers: Any = 1) -> int:
    if isinstance(value, str):
        match = _CORES.match(value)
        if match:
            return int(match.group(1) or 1) * (cores or usable_cores())
        match = _PER_WORKER.match(value)
        if match and isinstance(workers, int) and workers >= 1:
            total = int(match.group(1))
            if total % workers or total < workers:
                raise ExperimentError(f"concurrency {value!r}: {total} slots cannot be shared evenly among "
                                      f"{workers} workers")
            return total // workers
    return value


def _check_value(where: str, key: str, value: Any) -> None:
    want = SETTINGS[key].type
    if key == "concurrency" and isinstance(value, str) and (_CORES.match(value) or _PER_WORKER.match(value)):
        return
    ok = (isinstance(value, bool) if want is bool else
          isinstance(value, str) if want is str else
          isinstance(value, int) and not isinstance(value, bool) if want is int else
          isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok:
        kind = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}[want]
        extra = ' (or "cores", "N*cores", "N/workers")' if key == "concurrency" else ""
        raise ExperimentError(f"{where}.{key}: {value!r} is not {kind}{extra}")


def _check_settings(path: str, where: str, table: Any, lists: bool) -> dict:
    if not isinstance(table, dict):
        raise ExperimentError(f"{path}: [{where}] must be a table of settings")
    for key, value in table.items():
        if key not in SETTINGS and not (where == "quick" and key == "repeats"):
            noun = "axis" if where == "axes" else "setting"
            raise ExperimentError(f"{path}: unknown {noun} {where}.{key}; allowed: {', '.join(SETTINGS)}")
        if key == "repeats":
            continue
        values = value if isinstance(value, list) else [value]
        if where == "axes" and not isinstance(value, list):
            raise ExperimentError(f"{path}: axes.{key} must be a list of values")
        if lists and not values:
            raise ExperimentError(f"{path}: axes.{key} is empty; give at least one value")
        if where == "fixed" and isinstance(value, list):
            raise ExperimentError(f"{path}: fixed.{key} must be one value, not a list (make it an axis)")
        for v in values:
            _check_value(f"{path}: {where}", key, v)
    return table


def load_experiment(path: str | Path) -> Experiment:
    """Parse and fully validate an experiment file; raises ExperimentError naming file and key."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such experiment file") from None
    except IsADirectoryError:
        raise ExperimentError(f"{path}: is a directory, not an experiment file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{path}: not valid TOML ({exc})") from None
    for key in data:
        if key not in TOP_KEYS:
            raise ExperimentError(f"{path}: unknown key {key!r}; allowed: {', '.join(TOP_KEYS)}")
    for key in ("name", "question"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ExperimentError(f"{path}: {key} must be a non-empty string")
    if not NAME.match(data["name"]):
        # The name becomes a folder name under results/: no path separators, no '..', nothing hidden.
        raise ExperimentError(f"{path}: name {data['name']!r} must be letters, digits, '.', '_' or '-' (at most 64, "
                              "not starting with '.' or '-'): it names the sweep's folder")
    repeats = data.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= MAX_REPEATS:
        raise ExperimentError(f"{path}: repeats must be a whole number >= 1 and at most {MAX_REPEATS}, "
                              f"got {repeats!r}")
    fixed = _check_settings(path, "fixed", data.get("fixed", {}), lists=False)
    axes = _check_settings(path, "axes", data.get("axes", {}), lists=True)
    if not axes:
        raise ExperimentError(f"{path}: [axes] is missing or empty; give at least one axis")
    quick = _check_settings(path, "quick", data.get("quick", {}), lists=False)
    both = set(fixed) & set(axes)
    if both:
        raise ExperimentError(f"{path}: {', '.join(sorted(both))} is both fixed and an axis")
    qr = quick.get("repeats", 1)
    if not isinstance(qr, int) or isinstance(qr, bool) or qr < 1:
        raise ExperimentError(f"{path}: quick.repeats must be a whole number >= 1, got {qr!r}")
    slo = data.get("slo")
    if slo is not None:
        try:
            parse_slo(slo if isinstance(slo, str) else repr(slo))
        except SpecError as exc:
            raise ExperimentError(f"{path}: slo: {exc}") from None
        for given in ("rate", "tasks"):
            if given in fixed or given in axes:
                raise ExperimentError(f"{path}: a capacity experiment (slo) chooses the rate itself: leave {given} "
                                      "out")
        if repeats != 1:
            raise ExperimentError(f"{path}: a capacity experiment (slo) runs one search per cell, its steps its own "
                                  "repeats: leave repeats out")
    skip = data.get("skip", [])
    if not isinstance(skip, list) or not all(isinstance(rule, dict) and rule for rule in skip):
        raise ExperimentError(f"{path}: skip must be a list of [[skip]] tables, each naming axis values")
    for rule in skip:
        for key, value in rule.items():
            if key not in axes or value not in axes[key]:
                raise ExperimentError(f"{path}: skip.{key} = {value!r} is not a value of an axis; allowed: "
                                      + "; ".join(f"{k} in {v}" for k, v in axes.items()))
    exp = Experiment(path, data["name"], data["question"], repeats, fixed, axes, quick, slo=slo, skip=skip)
    for version in (exp, exp.shrunk()):
        size = math.prod(len(v) for v in version.axes.values()) * version.repeats
        if size > MAX_RUNS:
            raise ExperimentError(f"{path}: {size} runs (cells x repeats) is more than {MAX_RUNS}, the most one "
                                  "sweep runs; split it into smaller experiments")
        try:
            cells = version.cells()
        except ExperimentError as exc:
            raise ExperimentError(f"{path}: {exc}") from None
        for cell in cells:
            try:
                build_spec(**({**cell, "rate": 1.0} if slo is not None else cell))  # a search's steps have a rate
            except SpecError as exc:
                raise ExperimentError(f"{path}: {exc}") from None
    return exp
