"""The GIL probes: off by default; on, they show the GIL passing between threads at the switch interval."""
from __future__ import annotations

import pandas as pd
import pytest

from harness import analysis
from harness.spec import SpecError, build_spec


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
    held = analysis.gil_handoffs(bands, 0.0, 0.04)
    assert held["gil_hold_median_s"] == pytest.approx(0.018, abs=0.004)


@pytest.mark.parametrize("interval", [0.01, 0.05])
def test_threads_pass_the_gil_at_the_switch_interval(bench, interval):
    run = bench(pool="threads", workload="cpu", concurrency=2, tasks=2, duration=0.8, switch_interval=interval,
                gil_probe=True)
    probe = run.summary["gil_probe"]
    # The kernel's 4 ms tick limits resolution: a hold is measured to within a tick or two.
    assert 0.5 * interval <= probe["gil_hold_median_s"] <= 2 * interval + 0.008, probe
    assert probe["contention_mean"] > 0.05  # gilknocker, inside the worker, waited for the GIL
    assert probe["oncpu_sampler_core_fraction"] < 0.25  # its cost is recorded
    for name in ("gil_oncpu.csv", "gil_contention.csv", "gil.png"):
        assert (run.path / name).stat().st_size > 0


def test_prefork_processes_do_not_contend(bench):
    run = bench(pool="prefork", workload="cpu", concurrency=2, tasks=2, duration=0.5, gil_probe=True)
    assert run.summary["gil_probe"]["contention_mean"] < 0.1
