"""A machine slowed on purpose in the middle of a run: the lab must see it (UNSTEADY), by the tasks it times
alone before and after the batch, not only by counting other processes. Real worker, real broker."""
from __future__ import annotations

import os
import subprocess
import sys

import psutil

from harness.model.spec import build_spec
from harness.pipeline import run_bench

HOG = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


# The worker's weight against a hog once it is reniced: nice 10 weighs 110 to a hog's 1024.
WORKER_NICE = 10


class SlowDown:
    """A live view that, at its first call (the batch's collect, so after the first task alone), starts one
    CPU-hungry process pinned to each core and lowers the worker's priority (its nice, and its session's autogroup
    where the kernel groups by session): from then on the worker gets a small share of a core.

    Hogs alone are not enough: the worker runs in a session of its own, and with autogroup (on here) the scheduler
    weighs sessions, not processes. Beside the hogs the worker kept most of its core (a task's run time stayed
    within 1.1x of its own CPU); what slowed it was the hogs' load on the host, 1.2-1.5x, which the machine's drift
    could hide (0.30 s alone, then 0.35 s beside the hogs, in a fresh-clone make test). Reniced too, the task alone
    took 4.9-9.9x as long beside the hogs in four tries."""

    def __init__(self) -> None:
        self.hogs: list[subprocess.Popen] = []

    def __call__(self, _spec):
        def watch(_records, _cores, _arrivals=None):
            if not self.hogs:
                for worker in _workers():
                    _lower_priority(worker.pid)
                self.hogs = [subprocess.Popen([sys.executable, "-c", HOG, str(core)])
                             for core in sorted(os.sched_getaffinity(0))]
        watch.close = lambda: None
        return watch

    def stop(self) -> None:
        for hog in self.hogs:
            hog.kill()
            hog.wait(timeout=10)


def _workers() -> list[psutil.Process]:
    """The Celery worker processes this test process started."""
    return [p for p in psutil.Process().children(recursive=True) if "workloads.app" in " ".join(p.cmdline())]


def _lower_priority(pid: int) -> None:
    os.setpriority(os.PRIO_PROCESS, pid, WORKER_NICE)  # the worker's main thread, where solo runs the tasks
    try:
        with open(f"/proc/{pid}/autogroup", "w") as group:  # its session's weight, where autogroup is on
            group.write(str(WORKER_NICE))
    except OSError:  # no autogroup in this kernel: the nice alone weighs the worker against the hogs
        pass


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
