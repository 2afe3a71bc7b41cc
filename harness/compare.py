"""Do two runs or two sweeps differ? Cell by cell, with a significance test and an effect size.

Sweeps: each cell's repeats in A against the same cell's repeats in B, Welch's t-test (as pyperf
does), for a few headline metrics. Runs: the per-task distributions, Mann-Whitney U (as asv does),
since one run has many tasks but one summary. A difference is reported only when it is both
significant (p < 0.05) and at least MIN_EFFECT of the median, so noise and trivia both stay quiet.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scistats

from harness import analysis
from harness.results import load_run
from harness.sweep import load_sweep_manifest, sweep_runs

ALPHA = 0.05
MIN_EFFECT = 0.05
SWEEP_METRICS = ["makespan_s", "speedup", "mean_cores_used", "throughput_per_s"]
TASK_METRICS = ["run_s", "queue_wait_s", "latency_s"]


def compare_samples(a: list[float], b: list[float], test: str = "welch") -> dict:
    """Median of each side, relative change, p-value and a verdict. Pure."""
    a = np.asarray([x for x in a if x is not None and np.isfinite(x)], dtype=float)
    b = np.asarray([x for x in b if x is not None and np.isfinite(x)], dtype=float)
    out = {"n_a": len(a), "n_b": len(b), "median_a": float(np.median(a)) if len(a) else np.nan,
           "median_b": float(np.median(b)) if len(b) else np.nan}
    out["change"] = (out["median_b"] - out["median_a"]) / abs(out["median_a"]) if out["median_a"] else np.nan
    if min(len(a), len(b)) < 2:
        return {**out, "p": np.nan, "verdict": "too few repeats to test"}
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        p = 0.0 if a[0] != b[0] else 1.0
    elif test == "welch":
        p = float(scistats.ttest_ind(a, b, equal_var=False).pvalue)
    else:
        p = float(scistats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    if p < ALPHA and abs(out["change"]) >= MIN_EFFECT:
        verdict = f"differs: B is {abs(out['change']):.0%} {'higher' if out['change'] > 0 else 'lower'}"
    elif p < ALPHA:
        verdict = f"same within {MIN_EFFECT:.0%} (significant but small)"
    else:
        verdict = "no significant difference"
    return {**out, "p": p, "verdict": verdict}


def _task_metrics(path: Path) -> pd.DataFrame:
    run = load_run(path)
    t = analysis.with_timings(run.tasks)
    t = t[t["role"] == "foreground"] if "role" in t else t
    return t.assign(latency_s=t["finished"] - t["submitted"])


def compare_runs(a: Path, b: Path) -> pd.DataFrame:
    ta, tb = _task_metrics(a), _task_metrics(b)
    return pd.DataFrame([{"cell": "run", "metric": m, **compare_samples(ta[m], tb[m], test="mannwhitney")}
                         for m in TASK_METRICS])


def compare_sweeps(a: Path, b: Path) -> pd.DataFrame:
    rows = []
    by_label = {}
    for side, folder in (("a", a), ("b", b)):
        for entry in sweep_runs(folder, load_sweep_manifest(folder)):
            if entry["summary"]:
                by_label.setdefault(entry["label"], {"a": [], "b": []})[side].append(entry["summary"])
    for label, sides in by_label.items():
        if not sides["a"] or not sides["b"]:
            rows.append({"cell": label, "metric": "-", "verdict": "only in " + ("A" if sides["a"] else "B")})
            continue
        for m in SWEEP_METRICS:
            rows.append({"cell": label, "metric": m, **compare_samples([s.get(m) for s in sides["a"]],
                                                                       [s.get(m) for s in sides["b"]])})
    return pd.DataFrame(rows)


def compare(a: str | Path, b: str | Path) -> pd.DataFrame:
    a, b = Path(a), Path(b)
    a_sweep, b_sweep = (a / "sweep.json").exists(), (b / "sweep.json").exists()
    if a_sweep != b_sweep:
        raise ValueError(f"compare two runs or two sweeps, not a {'sweep' if a_sweep else 'run'} "
                         f"with a {'sweep' if b_sweep else 'run'}")
    return compare_sweeps(a, b) if a_sweep else compare_runs(a, b)


def format_comparison(table: pd.DataFrame) -> str:
    if table.empty:
        return "nothing to compare"
    cols = [c for c in ("cell", "metric", "median_a", "median_b", "change", "p", "verdict") if c in table]
    return table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")
