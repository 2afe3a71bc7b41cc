"""The live view of an open-loop load: the tasks sent so far, their rate while they are sent, and the broker's queue."""
from __future__ import annotations

import io

from harness.present.live import Arrivals, PlainLines, arrivals_text, spark


def test_arrivals_say_sent_of_total_with_the_rate_only_while_sending_and_the_queue():
    sending = Arrivals(sent=30, total=120, queued=11)
    assert arrivals_text(sending, 1.0) == "30/120 sent (30.0/s), 11 queued on the broker"
    # after the last send the rate would fall with every redraw: not shown
    assert arrivals_text(Arrivals(sent=120, total=120, queued=4), 6.5) == "120/120 sent, 4 queued on the broker"
    assert arrivals_text(Arrivals(sent=3, total=120, queued=None), 0.1) == "3/120 sent"
    assert arrivals_text(None, 3.0) == ""


def test_the_queue_lane_is_scaled_to_its_deepest_reading():
    assert spark([0, 0]) == "  "
    lane = spark([0, 5, 10])
    assert lane[0] == " " and lane[-1] == "█" and lane[1] not in " █"


def test_plain_lines_show_a_loads_arrivals_and_a_batch_without_them():
    out = io.StringIO()
    view = PlainLines("threads pool · cpu", 120, 2, every_s=0.0, out=out)
    view([{}] * 18, 1.0, Arrivals(sent=30, total=120, queued=11))
    view([{}] * 20, 1.0)
    first, second = out.getvalue().splitlines()
    assert "18/120 tasks done, 30/120 sent" in first and "11 queued on the broker" in first
    assert "sent" not in second and "20/120 tasks done, 1.0 of 2 cores" in second
