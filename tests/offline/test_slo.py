"""SLO= as capacity and advice take it: a percentile and a limit, or one line naming the form."""
from __future__ import annotations

import pytest

from harness.errors import SpecError
from harness.model.slo import Slo, parse


def test_an_slo_is_a_percentile_and_a_limit_in_seconds():
    assert parse("p95<1s") == Slo(95.0, 1.0)
    assert parse(" p99.9 < 250ms ") == Slo(99.9, 0.25)
    assert parse("p50<2.5s").text == "p50<2.5s" and parse("p99<250ms").text == "p99<250ms"


@pytest.mark.parametrize("text", ["95<1s", "p95<1", "p95>1s", "p100<1s", "p0<1s", "p95<0s", "p95 1s", ""])
def test_an_slo_that_does_not_parse_is_one_line_naming_the_form(text):
    with pytest.raises(SpecError, match=r"give p<percentile><<limit>ms\|s, e.g. p95<1s|must be above 0"):
        parse(text)
