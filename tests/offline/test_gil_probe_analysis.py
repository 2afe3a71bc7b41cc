"""The GIL probe's settings and its analysis, on hand-made samples."""
from __future__ import annotations

import pandas as pd
import pytest

from harness.analysis import gil as analysis
from harness.analysis import timing
from harness.errors import SpecError
from harness.model.spec import build_spec


def test_probe_is_off_by_default_and_refused_where_there_is_no_gil_to_pass():
    assert build_spec().gil_probe is False
    assert build_spec(gil_probe="yes").gil_probe is True
    with pytest.raises(SpecError, match="gevent runs every task in one OS thread"):
        build_spec(pool="gevent", gil_probe=True)
    with pytest.raises(SpecError, match="gil probe must be on or off"):
        build_spec(gil_probe="sometimes")


def test_holder_bands_merge_tick_stalls_and_split_at_handovers():
    # thread 1 runs 0-20 ms (its counter stalls between 4 ms ticks), then thread 2 runs 20-40 ms
    rows = []
    for ms in range(0, 41):
        t = ms / 1000
        one = min(ms, 20) // 4 * 4 * 1e6
        two = max(0, ms - 20) // 4 * 4 * 1e6
        rows += [(t, 9, 1, one), (t, 9, 2, two)]
    bands = analysis.gil_holder_bands(pd.DataFrame(rows, columns=["t", "pid", "tid", "oncpu_ns"]))
    assert bands["tid"].tolist() == [1, 2]
    held = analysis.gil_handoffs(bands, [(0.0, 0.04)])
    assert held["gil_hold_median_s"] == pytest.approx(0.018, abs=0.004)


def test_holds_count_only_while_tasks_ran_side_by_side():
    # task A runs alone 0-0.6 s (one long band: no one to hand over to), then B joins and the
    # GIL passes every 50 ms until both end at 1.0 s
    tasks = pd.DataFrame({"started": [0.0, 0.6], "finished": [1.0, 1.0]})
    assert timing.contended_windows(tasks) == [(0.6, 1.0)]
    bands = pd.DataFrame([(9, 1, 0.0, 0.65)] + [(9, 1 + (i % 2 == 0), 0.65 + 0.05 * i, 0.7 + 0.05 * i)
                                                 for i in range(1, 7)], columns=["pid", "tid", "start", "end"])
    held = analysis.gil_handoffs(bands, timing.contended_windows(tasks))
    assert held["gil_hold_median_s"] == pytest.approx(0.05)
    assert held["gil_contended_s"] == pytest.approx(0.4)
    # over the whole span the lone run would have counted as a hold
    assert analysis.gil_handoffs(bands, [(0.0, 1.0)])["gil_hold_p90_s"] > 0.25
    assert analysis.gil_handoffs(bands, [])["gil_hold_median_s"] is None
