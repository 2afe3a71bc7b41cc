"""When an open-loop run's tasks arrive (RATE, LOAD_TIME, ARRIVALS): a schedule fixed before the run starts, the
same for every pool (and, for Poisson arrivals, for every run with the same SEED). Pure.

A closed batch measures how fast a pool drains work it was handed at once; production tasks arrive. As wrk2 and
k6's constant-arrival-rate executor do, the lab submits each task at its scheduled time whatever the worker does,
and measures its latency from that time, so a stalled worker cannot hide its stall by slowing the submitter
(coordinated omission).

    constant        one task every 1/RATE seconds
    poisson         exponential gaps of mean 1/RATE (seeded by SEED): a random stream of independent callers
    burst:20x0.5s   20 tasks at once every 0.5 s: the rate is 40/s, RATE may be left out
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from harness.errors import SpecError

# What the submitter is asked for at most: BENCHMARKS.md has what it holds on 2 cores.
MAX_RATE = 2000.0
MAX_LOAD_TIME_S = 3600.0
MAX_ARRIVALS = 200_000
KINDS = ("constant", "poisson")
_BURST = re.compile(r"^burst:(\d+)x(\d+(?:\.\d+)?)s$")
BURST_FORM = "burst:<tasks>x<seconds>s, e.g. burst:20x0.5s"


@dataclass(frozen=True)
class Arrivals:
    kind: str            # "constant", "poisson" or "burst"
    size: int = 1        # a burst's tasks
    period_s: float = 0.0  # the time between bursts

    @property
    def burst_rate(self) -> float | None:
        """The rate a burst pattern implies; None for the others (RATE says it)."""
        return self.size / self.period_s if self.kind == "burst" else None


def parse(text: str) -> Arrivals:
    """ARRIVALS as given: constant, poisson or burst:NxTs; one line naming what is allowed otherwise."""
    value = text.strip()
    if value in KINDS:
        return Arrivals(value)
    match = _BURST.match(value)
    if not match:
        raise SpecError(f"ARRIVALS {text!r} is not an arrival pattern: give constant, poisson or {BURST_FORM}")
    size, period = int(match.group(1)), float(match.group(2))
    if size < 1 or period <= 0:
        raise SpecError(f"ARRIVALS {text!r}: a burst needs at least 1 task and a period above 0 s ({BURST_FORM})")
    if size / period > MAX_RATE:
        raise SpecError(f"ARRIVALS {text!r} is {size / period:g} tasks/s, above the {MAX_RATE:g} the lab submits")
    return Arrivals("burst", size, period)


def schedule(arrivals: Arrivals, rate: float, load_time_s: float, seed: int = 0) -> list[float]:
    """Each task's arrival, in seconds from the load's start, in order, all within [0, load_time_s)."""
    if arrivals.kind == "burst":
        bursts = int(load_time_s / arrivals.period_s - 1e-9) + 1
        return [i * arrivals.period_s for i in range(bursts) for _ in range(arrivals.size)]
    if arrivals.kind == "poisson":
        rng, t, out = random.Random(seed), 0.0, list[float]()
        while True:
            t += rng.expovariate(rate)
            if t >= load_time_s:
                return out
            out.append(t)
    return [i / rate for i in range(int(rate * load_time_s - 1e-9) + 1)]


def count(arrivals: Arrivals, rate: float, load_time_s: float, seed: int = 0) -> int:
    """How many tasks the schedule has (the run's TASKS)."""
    return len(schedule(arrivals, rate, load_time_s, seed))
