"""Worker-side GIL probe: gilknocker's contention, reported every REPORT_S to the run's Redis list.

gilknocker runs a native thread that keeps trying to take the GIL and measures how long it waits:
the share of time spent waiting is the contention. A small Python thread reads and resets it,
so each report covers the last interval. Started only when the run asks for the GIL probe.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable

from workloads.protocol import contention_key

REPORT_S = 0.05
_started: set[int] = set()


def start(run_id: str, client: Callable) -> None:
    """Start the probe in this process (once per process: solo sends both init signals)."""
    if os.getpid() in _started:
        return
    _started.add(os.getpid())
    from gilknocker import KnockKnock

    # Knock every 1 ms, giving up a knock after 100 ms: the waits are what is measured.
    knocker = KnockKnock(polling_interval_micros=1000, timeout_micros=100_000)
    knocker.start()

    def report() -> None:
        key, pid = contention_key(run_id), os.getpid()
        while True:
            time.sleep(REPORT_S)
            value = knocker.contention_metric
            knocker.reset_contention_metric()
            client().rpush(key, json.dumps([time.time(), pid, value]))

    threading.Thread(target=report, name="lab-gil-probe", daemon=True).start()
