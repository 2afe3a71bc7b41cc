"""harness.analysis.cpu: CPU seconds and cores from the sampled process tree."""
from __future__ import annotations

import pytest
from tables import samples_table

from harness.analysis import cpu


def test_cpu_between_two_times_sums_the_tree_and_counts_a_late_process_from_zero():
    s = samples_table({1: [(0, 0.0), (1, 1.0), (2, 2.0)], 2: [(1, 5.0), (2, 6.0)]})
    # pid 2 appears at t=1 with 5 s already used before the window: only its growth counts
    assert cpu.cpu_seconds_between(s, 0, 2) == pytest.approx(3.0)
    assert cpu.cpu_seconds_between(s, 0.5, 1.5) == pytest.approx(1.5)


def test_cores_over_time_is_a_rate():
    s = samples_table({1: [(0, 0.0), (1, 2.0), (2, 4.0)]})
    cores = cpu.cores_over_time(s, window_s=0.5)
    assert cores["cores"].to_numpy() == pytest.approx([2.0] * 4)
