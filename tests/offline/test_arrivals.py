"""Open-loop arrivals (harness.model.arrivals) and the settings that shape them: the schedule fixed before a run,
and every mistake refused in one line before anything starts."""
from __future__ import annotations

import statistics

import pytest

from harness.errors import SpecError
from harness.model import arrivals
from harness.model.spec import build_spec


def test_constant_arrivals_are_evenly_spaced_within_the_load_time():
    times = arrivals.schedule(arrivals.parse("constant"), 40, 3)
    assert len(times) == 120 and times[0] == 0 and times[-1] < 3
    assert {round(b - a, 9) for a, b in zip(times, times[1:], strict=False)} == {0.025}


def test_poisson_arrivals_have_the_rate_on_average_and_the_same_seed_gives_the_same_schedule():
    one = arrivals.schedule(arrivals.parse("poisson"), 200, 30, seed=7)
    assert one == arrivals.schedule(arrivals.parse("poisson"), 200, 30, seed=7)
    assert one != arrivals.schedule(arrivals.parse("poisson"), 200, 30, seed=8)
    gaps = [b - a for a, b in zip(one, one[1:], strict=False)]
    assert abs(len(one) / 30 - 200) < 200 * 0.05 and abs(statistics.mean(gaps) - 1 / 200) < 0.0005
    assert statistics.stdev(gaps) > 0.8 / 200  # exponential gaps: their spread is about their mean


def test_a_burst_pattern_sends_its_tasks_at_once_every_period():
    pattern = arrivals.parse("burst:20x0.5s")
    times = arrivals.schedule(pattern, pattern.burst_rate, 2)
    assert pattern.burst_rate == 40 and len(times) == 80 and sorted(set(times)) == [0, 0.5, 1.0, 1.5]


def test_load_settings_derive_the_tasks_and_refuse_what_cannot_be_scheduled():
    spec = build_spec(pool="threads", rate=40, load_time=3)
    assert (spec.is_load, spec.tasks, spec.arrivals, spec.warmup) == (True, 120, "constant", pytest.approx(0.6))
    burst = build_spec(pool="threads", arrivals="burst:20x0.5s", load_time=2)
    assert burst.rate == 40 and burst.tasks == 80
    assert not build_spec(pool="threads").is_load and build_spec(pool="threads").load_time is None
    for settings, message in [
        (dict(rate=40, tasks=10), "TASKS follows from RATE x LOAD_TIME"),
        (dict(load_time=30), "LOAD_TIME shape an open-loop load: give RATE"),
        (dict(arrivals="poisson"), "ARRIVALS shape an open-loop load: give RATE"),
        (dict(rate=40, arrivals="burst:20x1s"), "ARRIVALS=burst:20x1s is 20 tasks/s but RATE=40"),
        (dict(rate=40, arrivals="bursts of 20"), "is not an arrival pattern: give constant, poisson or burst:"),
        (dict(rate=-1), "RATE must be a number > 0"),
        (dict(rate=5000), "RATE must be at most 2000"),
        (dict(rate=40, load_time=10, warmup=6), "WARMUP=6 s must be under half of LOAD_TIME=10 s"),
        (dict(rate=0.01, load_time=1), None),
        (dict(rate=40, background="cpu"), "an open-loop load (RATE) has none"),
    ]:
        if message is None:
            assert build_spec(pool="threads", **settings).tasks == 1  # the first arrival is at 0
            continue
        with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
            build_spec(pool="threads", **settings)
