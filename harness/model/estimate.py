"""How long a sweep will take, said before it starts, and when a sweep is long enough to ask first.

A typo in an experiment file (a 10,000-value axis, a 100-second task) should cost a line, not an
afternoon of a machine: every sweep prints its estimate first, and one longer than LONG_SWEEP_S
starts only when the user agrees (a prompt at a terminal, `--yes` in a script) or bounds it with
`--max-hours`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.model.spec import RUN_OVERHEAD_S, RunSpec

# Longer than this, a sweep asks before it starts: a lesson's sweep takes a few minutes, a careful one
# with repeats tens of minutes; hours are rarely meant.
LONG_SWEEP_S = 1800.0
# --max-hours: above zero, at most a week.
MAX_HOURS = 168.0


@dataclass(frozen=True)
class Estimate:
    runs: int
    seconds: float
    guessed: int  # runs of the user's own task, whose length is not known before it runs

    @property
    def long(self) -> bool:
        return self.seconds > LONG_SWEEP_S

    def line(self) -> str:
        guess = (f"; {self.guessed} run(s) of your own task counted at DURATION a task, which may be far off"
                 if self.guessed else "")
        return (f"estimate: {self.runs} run(s), about {duration_text(self.seconds)} (each run's tasks at its pool's "
                f"best speedup here, plus {RUN_OVERHEAD_S:.0f} s a run){guess}")


def estimate(specs: Iterable[RunSpec], cores: int) -> Estimate:
    """The time of the given runs (one spec per run, repeats included), one after another."""
    specs = list(specs)
    return Estimate(len(specs), sum(s.expected_s(cores) for s in specs), sum(not s.expected_known for s in specs))


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
