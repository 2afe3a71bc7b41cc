"""The GIL probes: off by default; on, they show the GIL passing between threads at the switch interval."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("interval", [0.01, 0.05])
def test_threads_pass_the_gil_at_the_switch_interval(bench, interval):
    run = bench(pool="threads", workload="cpu", concurrency=2, tasks=2, duration=0.8, switch_interval=interval,
                gil_probe=True)
    probe = run.summary.gil_probe
    # The kernel's 4 ms tick limits resolution: a hold is measured to within a tick or two.
    assert 0.5 * interval <= probe.gil_hold_median_s <= 2 * interval + 0.008, probe
    assert probe.contention_mean > 0.05  # gilknocker, inside the worker, waited for the GIL
    assert probe.oncpu_sampler_core_fraction < 0.25  # its cost is recorded
    for name in ("gil_oncpu.csv", "gil_contention.csv", "gil.png"):
        assert (run.path / name).stat().st_size > 0


def test_prefork_processes_do_not_contend(bench):
    run = bench(pool="prefork", workload="cpu", concurrency=2, tasks=2, duration=0.5, gil_probe=True)
    assert run.summary.gil_probe.contention_mean < 0.1
