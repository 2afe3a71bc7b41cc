"""harness.analysis.stats: a sweep's cells over repeats."""
from __future__ import annotations

import pandas as pd


def test_spread_warning_needs_a_real_disagreement():
    from harness.analysis import stats

    runs = pd.DataFrame({"cell": [0, 0, 0, 1, 1, 1], "repeat": [0, 1, 2] * 2, "pool": ["a"] * 3 + ["b"] * 3,
                         "speedup": [1.9, 1.9, 1.9, 1.0, 1.9, 1.5], "mean_cores_used": [0.01, 0.03, 0.02, 1, 1, 1],
                         "makespan_s": [1.0] * 6})
    table = stats.cell_stats(runs.reindex(columns=["cell", "repeat", "pool", *stats.METRICS]), ["pool"])
    assert table.loc[0, "warning"] == ""  # 0.01 to 0.03 cores is noise, not disagreement
    assert "speedup varies by" in table.loc[1, "warning"]
    assert table.loc[1, "speedup"] == 1.5 and table.loc[1, "speedup_q25"] == 1.25
