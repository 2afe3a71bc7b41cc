"""A latency objective, as `make capacity SLO='p95<1s'` gives it: a percentile of the latency from each task's
scheduled time, and the most it may be. Pure."""
from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import SpecError

_SLO = re.compile(r"^\s*p(\d{1,2}(?:\.\d+)?)\s*<\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")
FORM = "p<percentile><<limit>ms|s, e.g. p95<1s or p99.9<250ms"


@dataclass(frozen=True)
class Slo:
    percentile: float  # 50, 95, 99.9, ...
    limit_s: float

    @property
    def text(self) -> str:
        limit = f"{self.limit_s * 1000:g}ms" if self.limit_s < 1 else f"{self.limit_s:g}s"
        return f"p{self.percentile:g}<{limit}"


def parse(text: str) -> Slo:
    """SLO as given; one line naming the form otherwise."""
    match = _SLO.match(str(text))
    if not match:
        raise SpecError(f"SLO {text!r} does not parse: give {FORM}")
    percentile, limit = float(match.group(1)), float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    if not 0 < percentile < 100 or limit <= 0:
        raise SpecError(f"SLO {text!r}: the percentile must be above 0 and below 100, the limit above 0 ({FORM})")
    return Slo(percentile, limit)
