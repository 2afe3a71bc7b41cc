"""Do two runs or two sweeps differ? Cell by cell, with a significance test and an effect size.

Sweeps: each cell's repeats in A against the same cell's repeats in B, Welch's t-test (as pyperf
does), for a few headline metrics. Runs: the per-task distributions, Mann-Whitney U (as asv does),
since one run has many tasks but one summary. A difference is reported only when it is both
significant (p < 0.05) and at least MIN_EFFECT of the median, so noise and trivia both stay quiet.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeGuard

import numpy as np
import pandas as pd

from harness.analysis.timing import with_timings
from harness.results.records import Summary
from harness.results.sweep_folder import SweepRun

ALPHA = 0.05
MIN_EFFECT = 0.05
SWEEP_METRICS = ["makespan_s", "speedup", "mean_cores_used", "throughput_per_s"]
TASK_METRICS = ["run_s", "queue_wait_s", "latency_s"]


def compare_samples(a: Iterable[float | None], b: Iterable[float | None], test: str = "welch") -> dict:
    """Median of each side, relative change, p-value and a verdict. Pure."""
    xa = np.asarray([x for x in a if x is not None and np.isfinite(x)], dtype=float)
    xb = np.asarray([x for x in b if x is not None and np.isfinite(x)], dtype=float)
    out = {"n_a": len(xa), "n_b": len(xb), "median_a": float(np.median(xa)) if len(xa) else np.nan,
           "median_b": float(np.median(xb)) if len(xb) else np.nan}
    out["change"] = (out["median_b"] - out["median_a"]) / abs(out["median_a"]) if out["median_a"] else np.nan
    if min(len(xa), len(xb)) < 2:
        return {**out, "p": np.nan, "verdict": "too few repeats to test"}
    from scipy import stats as scistats  # here, not at import: scipy.stats takes a second to load

    if np.ptp(xa) == 0 and np.ptp(xb) == 0:
        p = 0.0 if xa[0] != xb[0] else 1.0
    elif test == "welch":
        p = float(scistats.ttest_ind(xa, xb, equal_var=False).pvalue)
    else:
        p = float(scistats.mannwhitneyu(xa, xb, alternative="two-sided").pvalue)
    if p < ALPHA and abs(out["change"]) >= MIN_EFFECT:
        verdict = f"differs: B is {abs(out['change']):.0%} {'higher' if out['change'] > 0 else 'lower'}"
    elif p < ALPHA:
        verdict = f"same within {MIN_EFFECT:.0%} (significant but small)"
    else:
        verdict = "no significant difference"
    return {**out, "p": p, "verdict": verdict}


def task_metrics(foreground: pd.DataFrame) -> pd.DataFrame:
    """Per-task run time, queue wait and latency (submit to finish; an open-loop load's from the scheduled time) of
    the measured tasks."""
    t = with_timings(foreground)
    return t.assign(latency_s=t["finished"] - (t["started"] - t["queue_wait_s"]))


def compare_runs(tasks_a: pd.DataFrame, tasks_b: pd.DataFrame) -> pd.DataFrame:
    """Two runs' measured tasks, metric by metric (Mann-Whitney over the tasks)."""
    ta, tb = task_metrics(tasks_a), task_metrics(tasks_b)
    return pd.DataFrame([{"cell": "run", "metric": m, **compare_samples(ta[m], tb[m], test="mannwhitney")}
                         for m in TASK_METRICS])


def compare_sweeps(entries_a: list[SweepRun], entries_b: list[SweepRun]) -> pd.DataFrame:
    """Two sweeps' entries (label and run summary each), cell by cell (Welch's t-test over repeats)."""
    rows = []
    by_label: dict[str, dict[str, list[Summary]]] = {}
    for side, entries in (("a", entries_a), ("b", entries_b)):
        for entry in entries:
            if entry.summary is not None:
                by_label.setdefault(entry.label, {"a": [], "b": []})[side].append(entry.summary)
    for label, sides in by_label.items():
        if not sides["a"] or not sides["b"]:
            rows.append({"cell": label, "metric": "-", "verdict": "only in " + ("A" if sides["a"] else "B")})
            continue
        for m in SWEEP_METRICS:
            rows.append({"cell": label, "metric": m, **compare_samples([s.metric(m) for s in sides["a"]],
                                                                       [s.metric(m) for s in sides["b"]])})
    return pd.DataFrame(rows)


def differences(table: pd.DataFrame) -> pd.DataFrame:
    """The (cell, metric) rows that differ: significant and at least MIN_EFFECT."""
    if table.empty or "verdict" not in table:
        return table
    return table[table["verdict"].astype(str).str.startswith("differs")]


def result_line(table: pd.DataFrame) -> str:
    """One line for a CI log: DIFFERENT (with the largest changes) or SAME."""
    found = differences(table)
    tested = int(table["p"].notna().sum()) if "p" in table else 0
    if found.empty:
        return f"compare: SAME: no significant difference of {MIN_EFFECT:.0%} or more in {tested} tested (cell, metric)"
    biggest = found.reindex(found["change"].abs().sort_values(ascending=False).index).head(3)
    parts = [f"{r.cell} {r.metric} {r.median_a:.4g} -> {r.median_b:.4g} ({r.change:+.0%}, p={r.p:.2g})"
             for r in biggest.itertuples()]
    return f"compare: DIFFERENT in {len(found)} of {tested} tested (cell, metric): " + "; ".join(parts)


def format_comparison(table: pd.DataFrame) -> str:
    if table.empty:
        return "nothing to compare"
    cols = [c for c in ("cell", "metric", "median_a", "median_b", "change", "p", "verdict") if c in table]
    return table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")


def summary_changes(old: Summary | dict[str, Any] | None, new: Summary | dict[str, Any] | None,
                    rel_tol: float = 1e-6, prefix: str = "") -> list[str]:
    """The fields (dotted for nested ones) whose values differ between two summaries, compared as their
    to_dict()s (a dict is compared as it is: the nested ones, such as gil_probe, are; None, a run not yet
    summarized, has no fields).

    Numbers within `rel_tol` of each other are the same: a summary computed from in-memory tables
    and one recomputed from their CSV files (9 decimals) differ in the last bits only.
    """
    old = old.to_dict() if isinstance(old, Summary) else old or {}
    new = new.to_dict() if isinstance(new, Summary) else new or {}
    changed = []
    for key in sorted(set(old) | set(new), key=str):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changed += summary_changes(a, b, rel_tol, f"{name}.")
        elif _is_number(a) and _is_number(b):
            both_nan = np.isnan(a) and np.isnan(b)
            if not both_nan and not np.isclose(a, b, rtol=rel_tol, atol=0.0):
                changed.append(name)
        elif a != b:
            changed.append(name)
    return changed


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
