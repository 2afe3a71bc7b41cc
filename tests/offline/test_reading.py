"""harness.present.reading: sentences from a sweep table."""
from __future__ import annotations

import pandas as pd


def test_reading_names_phantom_parallelism():
    from harness.present.reading import sweep_reading

    table = pd.DataFrame({"cell": [0, 1], "label": ["a", "b"], "pool": ["threads", "prefork"],
                          "workload": ["busy_wait"] * 2, "speedup": [1.8, 1.95], "ideal_speedup": [1, 2],
                          "mean_cores_used": [1.0, 1.9], "phantom_cores": [0.9, 0.05], "warning": ["", ""]})
    lines = sweep_reading(table, ["pool", "workload"], cores=2)
    assert any("busy_wait on threads: the 1.80x is phantom" in line for line in lines)
    assert not any("on prefork: the" in line for line in lines)
