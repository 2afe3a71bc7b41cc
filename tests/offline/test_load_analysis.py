"""An open-loop load's analysis (harness.analysis.load) on hand-made tables: latency from the schedule, the
percentiles of an HdrHistogram, SATURATED with its growth, and a submitter that fell behind."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.analysis.load import behind_sentence, load_figures, saturation_sentence, spectrum


def stream(rate: float, seconds: float, service_s: float, servers: int = 1, late_s: float = 0.0) -> pd.DataFrame:
    """Constant arrivals served first come first served by `servers` that each take `service_s` a task."""
    scheduled = 1000.0 + np.arange(int(rate * seconds)) / rate
    free = [1000.0] * servers
    rows = []
    for t in scheduled:
        i = int(np.argmin(free))
        start = max(t, free[i])
        free[i] = start + service_s
        rows.append({"scheduled": t, "submitted": t + late_s, "started": start, "finished": start + service_s})
    return pd.DataFrame(rows)


def test_a_rate_under_capacity_has_the_tasks_own_time_as_its_latency_and_holds():
    figures = load_figures(stream(20, 10, 0.05), 20, 10, 2)
    assert not figures["saturated"] and abs(figures["backlog_growth_per_s"]) < 0.5
    assert figures["latency_p50_s"] == pytest.approx(0.05, rel=0.002)  # HdrHistogram: 3 significant digits
    assert figures["latency_max_s"] == pytest.approx(0.05, rel=0.002) and figures["latency_tasks"] == 160
    assert figures["finish_rate"] == pytest.approx(20, rel=0.05) and saturation_sentence(figures) is None
    assert not figures["submitter_behind"] and figures["submit_late_p99_s"] < 0.001


def test_a_rate_over_capacity_is_saturated_with_its_growth_in_one_sentence():
    figures = load_figures(stream(40, 10, 0.05), 40, 10, 2)  # one server of 20 a second
    assert figures["saturated"] and figures["finish_rate"] == pytest.approx(20, rel=0.05)
    assert figures["backlog_growth_per_s"] == pytest.approx(20, rel=0.1)
    said = saturation_sentence(figures)
    assert said.startswith("SATURATED: 40 tasks/s offered, 20 finished per second, the queue grew by 20")
    # Latency from the schedule: the last arrival found 200 ahead of it at 20 a second, 10 s.
    assert figures["latency_max_s"] == pytest.approx(10.0, rel=0.01) and figures["latency_p50_s"] > 1


def test_latency_counts_from_the_schedule_so_a_late_submitter_cannot_hide_a_stall():
    t = stream(20, 10, 0.05, late_s=0.3)  # every task sent 300 ms late, then served at once
    t["started"] = t["submitted"]
    t["finished"] = t["started"] + 0.05
    figures = load_figures(t, 20, 10, 2)
    assert figures["latency_p50_s"] == pytest.approx(0.35, rel=0.01)
    assert figures["submitter_behind"] and "SUBMITTER BEHIND: tasks were sent 300 ms late" in behind_sentence(
        figures, 20)


def test_the_spectrum_reaches_the_tail_and_ends_at_the_max():
    values = pd.Series(np.linspace(0.01, 1.0, 1000))
    curve = spectrum(values)
    assert curve["value_s"].is_monotonic_increasing and curve["one_over_tail"].iloc[0] == 1
    assert curve["value_s"].iloc[-1] == pytest.approx(1.0, rel=0.002) and curve["percentile"].iloc[-2] > 99.8


def test_a_sweep_reads_a_loads_figures_as_metrics_and_draws_latency_against_the_rate(tmp_path):
    from harness.present.sweep_figures import sweep_figures
    from harness.results.records import Load, Summary

    held = Summary(load=Load(latency_p99_s=0.06, saturated=False, finish_rate=20.0))
    assert held.metric("load_latency_p99_s") == 0.06 and held.metric("load_saturated") == 0.0
    assert held.metric("load_finish_rate") == 20.0 and held.metric("load_nonsense") is None
    assert Summary().metric("load_latency_p99_s") is None  # a batch has no load
    table = pd.DataFrame({"pool": ["threads", "threads", "prefork", "prefork"], "rate": [10.0, 40.0, 10.0, 40.0],
                          "load_latency_p99_s": [0.05, 2.5, 0.05, 0.07], "load_saturated": [0.0, 1.0, 0.0, 0.0],
                          "speedup": [float("nan")] * 4})
    paths = sweep_figures(tmp_path, table, ["pool", "rate"], 2, {}, "latency")
    assert tmp_path / "latency-vs-rate.png" in paths and (tmp_path / "latency-vs-rate.png").stat().st_size > 0
