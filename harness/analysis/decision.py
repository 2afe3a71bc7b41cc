"""The decision a sweep ends with: for each kind of work it measured, which pool (and concurrency) to
choose, ties called ties, the measured reason in one sentence and how far to trust it. Pure.

The cells of a sweep are grouped by the work they ran (the settings in WORK_SETTINGS); within a group
the fastest cell (median speedup) wins unless another's interval overlaps it (harness.analysis.trust):
then it is a tie, settled by what costs less (a pool its maintainers do not discourage, then less
memory, then fewer slots), and said to be a tie.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.analysis import trust
from harness.analysis.stats import cell_spec
from harness.analysis.summary import PHANTOM_MARGIN_CORES
from harness.model.experiment import WORK_SETTINGS, work_key
from harness.model.pools import pool
from harness.model.spec import RunSpec, slots
from harness.model.workloads import KINDS, workload
from harness.results.records import Cell

# Below this best speedup nothing ran the work in parallel: the choice is then about cost alone.
NO_PARALLELISM = 1.2


@dataclass(frozen=True)
class Decision:
    work: str                 # "cpu (pure-Python CPU work: needs the GIL)"
    choice: str               # "prefork at concurrency 2"
    pool: str
    tied_with: tuple[str, ...]  # the other settings within the spread of the choice
    sentence: str
    trust: str                # low / medium / high
    trust_why: str
    deprecated: str | None    # the chosen pool's maintainers discourage it: why

    def line(self) -> str:
        return f"{self.sentence} Trust: {self.trust} ({self.trust_why})."

    def to_dict(self) -> dict:
        return {"work": self.work, "choice": self.choice, "pool": self.pool, "tied_with": list(self.tied_with),
                "sentence": self.sentence, "trust": self.trust, "trust_why": self.trust_why,
                "deprecated": self.deprecated}


def _setting_text(row: pd.Series) -> str:
    text = f"{row['pool']} at concurrency {int(row['concurrency'])}"
    workers = row.get("workers")
    hosts = row.get("hosts")
    if isinstance(hosts, str) and hosts:  # HOSTS: where, and how many workers on each
        count, per_host = len(hosts.split(",")), row.get("workers_per_host")
        several = per_host is not None and not pd.isna(per_host) and per_host > 1
        each = f" x {int(per_host)} workers each" if several else ""
        text += f" on {count} host{'s' if count > 1 else ''} ({hosts.replace(',', ', ')}){each}"
    elif workers is not None and not pd.isna(workers) and int(workers) > 1:
        text += f" x {int(workers)} workers"
    extra = [f"{k} {row[k]:g}" if isinstance(row[k], float) else f"{k} {row[k]}"
             for k in ("broker", "driver", "prefetch", "switch_interval") if k in row.get("_axes", ())
             and not pd.isna(row[k])]
    return text + (f" ({', '.join(extra)})" if extra else "")


def _work_text(spec: RunSpec) -> str:
    """The work a cell ran, from its settings as given (stats.cell_spec): a CPU fraction only where it named one."""
    name = spec.task or spec.workload
    kind = workload(spec.workload).kind
    text = f"{name} ({KINDS[kind].split(':')[0]})"
    if spec.cpu_fraction is not None:  # mixed work
        text = f"{name} at CPU fraction {spec.cpu_fraction:g} ({KINDS[kind].split(':')[0]})"
    return text


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _with_settings(table: pd.DataFrame, cells: list[Cell], axes: list[str]) -> pd.DataFrame:
    """The table's rows with their cells' work and slots (where the table has no column of them)."""
    by_number = {c.cell: c for c in cells}
    rows: list[dict[str, Any]] = []
    for row in table.to_dict("records"):
        cell = by_number[row["cell"]]
        spec = cell_spec(cell)
        settings = (*WORK_SETTINGS, "pool", "concurrency", "workers", "hosts", "workers_per_host")
        rows.append({**{k: getattr(spec, k) for k in settings}, **row, "_axes": tuple(axes), "_work": _work_text(spec),
                     "_work_key": work_key(cell.settings)})
    return pd.DataFrame(rows)


def _cheaper_first(rows: pd.DataFrame) -> pd.DataFrame:
    """Tied settings, the one to choose first: not deprecated, then less memory, then fewer slots."""
    memory = rows["pss_peak_mib"] if "pss_peak_mib" in rows else pd.Series(math.nan, index=rows.index)
    held = [slots(int(c), 1 if pd.isna(w) else int(w)) for c, w in zip(rows["concurrency"], rows["workers"],
                                                                       strict=True)]
    order = pd.DataFrame({"deprecated": rows["pool"].map(lambda p: pool(p).deprecated is not None),
                          "memory": memory.fillna(math.inf), "slots": held, "speed": -rows["speedup"]},
                         index=rows.index)
    return rows.loc[order.sort_values(["deprecated", "memory", "slots", "speed"]).index]


def _count(value: float | None) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _trust_of(rows: pd.DataFrame, quick: bool) -> tuple[str, str]:
    return trust.weakest(trust.trust_level(_count(r.get("n")), quick, _count(r.get("disturbed")),
                                           r.get("warning") if isinstance(r.get("warning"), str) else "",
                                           unsteady=_count(r.get("unsteady")))
                         for _, r in rows.iterrows())


def decide_one(group: pd.DataFrame, quick: bool) -> Decision:
    """The decision for one kind of work, from its cells' rows (speedup, its interval, n, memory, ...)."""
    ranked = group.dropna(subset=["speedup"]).sort_values("speedup", ascending=False)
    # A phantom speedup (a wall-clock spin "running" without the CPU) is not parallelism: left out.
    phantom = ranked["phantom_cores"].fillna(0) >= PHANTOM_MARGIN_CORES if "phantom_cores" in ranked else None
    left_out = ""
    if phantom is not None and phantom.any():
        left_out = " " + "; ".join(f"{_setting_text(r)}: its {_x(r['speedup'])} is phantom (the tasks overlapped in "
                                   "wall time without the CPU): left out" for _, r in ranked[phantom].iterrows()) + "."
        ranked = ranked[~phantom]
        if ranked.empty:
            level, why = _trust_of(group, quick)
            return Decision(work=group.iloc[0]["_work"], choice="none", pool="", tied_with=(), trust=level,
                            trust_why=why, deprecated=None,
                            sentence=f"{group.iloc[0]['_work']}: no choice: every speedup measured is phantom.")
    best = ranked.iloc[0]
    span = {i: trust.interval(r["speedup"], r.get("speedup_ci_low", math.nan), r.get("speedup_ci_high", math.nan),
                              int(r["n"])) for i, r in ranked.iterrows()}
    tied = ranked[[trust.tied(span[best.name], span[i]) for i in ranked.index]]
    chosen = _cheaper_first(tied).iloc[0]
    others = tied.drop(index=chosen.name)
    work, choice = best["_work"], _setting_text(chosen)
    level, why = _trust_of(tied if len(tied) > 1 else ranked.head(2), quick)
    mark = pool(chosen["pool"]).deprecated
    deprecated_text = f" ({mark})" if mark else ""
    if best["speedup"] < NO_PARALLELISM:
        sentence = (f"{work}: no setting ran it in parallel (best {_x(best['speedup'])}); choose {choice}"
                    f"{deprecated_text}, the cheapest of the {len(tied)} within the spread.")
    elif len(others):
        names = ", ".join(f"{_setting_text(r)} ({_x(r['speedup'])})" for _, r in others.iterrows())
        cost = (f"{chosen['pss_peak_mib']:.0f} MiB" if "pss_peak_mib" in chosen and not pd.isna(chosen["pss_peak_mib"])
                else "fewest slots")
        sentence = (f"{work}: a tie: {choice} ({_x(chosen['speedup'])}) and {names} are within their spread; "
                    f"choose {choice}{deprecated_text}, the cheapest ({cost}).")
    else:
        rest = ranked.drop(index=chosen.name)
        runner = rest[rest["pool"] != chosen["pool"]]
        runner = runner.iloc[0] if len(runner) else (rest.iloc[0] if len(rest) else None)
        against = (f" against {_setting_text(runner)} ({_x(runner['speedup'])}), the next best" if runner is not None
                   else "")
        ideal = chosen.get("ideal_speedup")
        ideal_text = f" (ideal {ideal:.3g}x)" if ideal is not None and not pd.isna(ideal) else ""
        sentence = (f"{work}: choose {choice}{deprecated_text}: {_x(chosen['speedup'])}{ideal_text}"
                    f"{against}.")
    sentence += left_out
    return Decision(work=work, choice=choice, pool=str(chosen["pool"]),
                    tied_with=tuple(_setting_text(r) for _, r in others.iterrows()), sentence=sentence,
                    trust=level, trust_why=why, deprecated=mark)


def decide(table: pd.DataFrame, cells: list[Cell], axes: list[str], quick: bool) -> list[Decision]:
    """One decision per kind of work in a sweep's summary table (its cells' settings from sweep.json)."""
    if table.empty or "speedup" not in table or not table["speedup"].notna().any():
        return []
    rows = _with_settings(table, cells, axes)
    return [decide_one(group, quick) for _, group in rows.groupby("_work_key", sort=False)
            if group["speedup"].notna().any()]
