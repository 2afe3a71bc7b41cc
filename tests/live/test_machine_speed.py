"""A machine slowed on purpose in the middle of a run: the lab must see it (UNSTEADY), by the tasks it times
alone before and after the batch, not only by counting other processes. Real worker, real broker."""
from __future__ import annotations

import os
import subprocess
import sys

from harness.model.spec import build_spec
from harness.pipeline import run_bench

HOG = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


class SlowDown:
    """A live view that, at its first call (the batch's collect, so after the first task alone), starts one
    CPU-hungry process pinned to each core: from then on every core runs the worker at a fraction of its speed."""

    def __init__(self) -> None:
        self.hogs: list[subprocess.Popen] = []

    def __call__(self, _spec):
        def watch(_records, _cores):
            if not self.hogs:
                self.hogs = [subprocess.Popen([sys.executable, "-c", HOG, str(core)])
                             for core in sorted(os.sched_getaffinity(0))]
        watch.close = lambda: None
        return watch

    def stop(self) -> None:
        for hog in self.hogs:
            hog.kill()
            hog.wait(timeout=10)


def test_a_run_slowed_after_its_reference_is_marked_unsteady_with_speed_drift(redis_url, tmp_path):
    slow = SlowDown()
    try:
        run = run_bench(build_spec(pool="solo", workload="cpu", concurrency=1, tasks=4, duration=0.25),
                        results_dir=tmp_path / "results", redis_url=redis_url, log=lambda _line: None, live=slow)
    finally:
        slow.stop()
    s = run.summary
    assert slow.hogs, "the slow-down never started"
    before, after = s.alone_runs_s
    # Alone before the hogs, alone again beside them: the second took far longer, and the lab says why.
    assert after > 1.2 * before, s.alone_runs_s
    assert s.unsteady is True and "speed drift" in s.unsteady_cause, s.unsteady_cause
    assert any(n.startswith("UNSTEADY: speed drift") for n in s.notes), s.notes
    # Other processes busy would make the run DISTURBED as well; the UNSTEADY mark does not rest on that: it
    # comes from the machine's speed as the tasks alone saw it.
    assert s.machine_drift > 0.1
