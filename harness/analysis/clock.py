"""Clocks brought onto one: each host's offset from the broker's clock, NTP-style. Pure, no I/O.

A host reads its own clock, asks the broker for its time (Redis TIME), and reads its clock again: the broker's
reading was taken somewhere in that round trip, so the host's clock is off by `server - (sent + received) / 2`,
within half the round trip. Of several such samples the one with the shortest round trip bounds the offset best.
Sampled before and after a run, the two estimates also say how far the host's clock drifted meanwhile.

Celery itself warns only about a worker clock more than 16 s off; a run's shortest tasks need far better, so a run
whose uncertainty is a noticeable share of its shortest task is marked (`too_uncertain`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# A run is marked when the clocks' uncertainty exceeds this share of its shortest task.
UNCERTAINTY_SHARE = 0.05


@dataclass(frozen=True)
class ClockSample:
    sent: float      # the host's clock before asking (epoch s)
    server: float    # the broker's clock, as it answered
    received: float  # the host's clock after the answer

    @property
    def round_trip_s(self) -> float:
        return self.received - self.sent

    @property
    def offset_s(self) -> float:
        """What to add to the host's clock to read the broker's."""
        return self.server - (self.sent + self.received) / 2


@dataclass(frozen=True)
class ClockOffset:
    offset_s: float       # add to the host's timestamps to put them on the broker's clock
    uncertainty_s: float  # half the best sample's round trip: the true offset is within +- this
    samples: int

    def to_dict(self) -> dict[str, float]:
        return {"offset_s": self.offset_s, "uncertainty_s": self.uncertainty_s, "samples": self.samples}


def estimate(samples: Sequence[ClockSample]) -> ClockOffset:
    """The offset from the sample with the shortest round trip (samples whose clock ran backwards are dropped)."""
    usable = [s for s in samples if s.round_trip_s >= 0]
    if not usable:
        raise ValueError("no clock sample with a round trip: the host's clock ran backwards during every one")
    best = min(usable, key=lambda s: s.round_trip_s)
    return ClockOffset(best.offset_s, best.round_trip_s / 2, len(usable))


def across_run(before: ClockOffset, after: ClockOffset) -> ClockOffset:
    """One offset for a run sampled before and after it: their mean, uncertain by both estimates and the drift
    between them (a clock that drifted 3 ms during the run is known to no better than that)."""
    drift = abs(after.offset_s - before.offset_s)
    return ClockOffset((before.offset_s + after.offset_s) / 2,
                       max(before.uncertainty_s, after.uncertainty_s) + drift / 2, before.samples + after.samples)


def too_uncertain(offset: ClockOffset, shortest_task_s: float) -> bool:
    """Whether the clocks' uncertainty is a noticeable share of the run's shortest task (UNCERTAINTY_SHARE)."""
    return offset.uncertainty_s > UNCERTAINTY_SHARE * shortest_task_s
