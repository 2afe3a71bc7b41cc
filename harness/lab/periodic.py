"""A sampler that runs in a background thread of the harness: a tick every 1/hz s until stopped."""
from __future__ import annotations

import threading
import time


def pause(stop: threading.Event, seconds: float, slice_s: float = 0.05) -> bool:
    """Wait `seconds`, or less once `stop` is set; whether it is. In sleeps of at most `slice_s`, not Event.wait: a
    condition wait with a timeout hangs under libfaketime, which the tests use to put an agent's clock 2 s off (its
    sampler and watcher run there), and time.sleep does not."""
    end = time.monotonic() + seconds
    while not stop.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, slice_s))
    return True


class PeriodicSampler:
    """Calls `sample()` every 1/hz seconds in a daemon thread; records the thread's own CPU time.

    Use as a context manager, or call `stop()`. Subclasses implement `sample()` (and `close()`
    to release what they opened); rows go in `self.rows`.
    """

    thread_name = "lab-sampler"

    def __init__(self, root_pid: int, hz: float) -> None:
        self.root_pid = root_pid
        self.period = 1.0 / hz
        self.rows: list[tuple] = []
        self.cpu_s = 0.0
        self.elapsed_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=10)

    def sample(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what sampling opened; called once, in the sampling thread, after the last sample."""

    def _run(self) -> None:
        cpu0, t0 = time.thread_time(), time.monotonic()
        next_at = t0
        try:
            while not self._stop.is_set():
                self.sample()
                next_at += self.period
                delay = next_at - time.monotonic()
                if delay < 0:  # fell behind (a loaded machine): do not try to catch up in a burst
                    next_at, delay = time.monotonic(), 0
                pause(self._stop, delay)
            self.sample()  # one last reading, at the stop
        finally:
            self.cpu_s = time.thread_time() - cpu0
            self.elapsed_s = time.monotonic() - t0
            self.close()
