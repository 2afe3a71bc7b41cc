"""The live view of a run while it goes: lanes filling with finished tasks, each shaded by how much of its
run time was its own CPU, and the CPU cores the worker uses right now against the machine's; for an open-loop load,
the tasks sent so far (the arrival rate) and the broker's queue, with a lane of its depth.

A watcher is called by the measuring loop (harness.lab.run.collect) with the records so far and the
cores in use, several times a second: `TerminalView` (rich, in a terminal), `PlainLines` (a line a
second, for logs and pipes), `NotebookView` (a figure in a notebook that grows as tasks finish).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harness.model.spec import RunSpec


@dataclass(frozen=True)
class Arrivals:
    """An open-loop load so far: tasks sent on their schedule of all it will send, and the broker's queue now."""

    sent: int
    total: int
    queued: int | None


class Watch(Protocol):
    """A live view: called with the records so far, the cores in use and an open-loop load's arrivals (None for a
    batch), closed when the run ends."""

    def __call__(self, records: list[dict], cores_now: float | None, arrivals: Arrivals | None = None, /) -> None: ...

    def close(self) -> None: ...


def arrivals_text(arrivals: Arrivals | None, elapsed_s: float) -> str:
    """'60/120 sent (29.8/s), 3 queued on the broker'; empty for a batch."""
    if arrivals is None:
        return ""
    sending = 0 < arrivals.sent < arrivals.total and elapsed_s > 0.5  # after the last send a rate would only fall
    rate = f" ({arrivals.sent / elapsed_s:.1f}/s)" if sending else ""
    queued = f", {arrivals.queued} queued on the broker" if arrivals.queued is not None else ""
    return f"{arrivals.sent}/{arrivals.total} sent{rate}{queued}"


SPARK = " ▁▂▃▄▅▆▇█"


def spark(depths: list[int]) -> str:
    """A lane of the queue's depth, a character per reading, scaled to the deepest."""
    top = max(depths, default=0)
    return "".join(SPARK[0 if top == 0 else round(d / top * (len(SPARK) - 1))] for d in depths)


BLOCK = "█"


def lanes(records: list[dict]) -> dict[str, list[float | None]]:
    """Per slot (in order of first task), the CPU share (own CPU / run time) of each finished task."""
    out: dict[str, list[float | None]] = {}
    for r in sorted(records, key=lambda r: r.get("started") or 0):
        run = (r.get("finished") or 0) - (r.get("started") or 0)
        share = min(1.0, r["cpu_s"] / run) if r.get("cpu_s") is not None and run > 0 else None
        out.setdefault(str(r.get("slot")), []).append(share)
    return out


def _due(view, records: list[dict]) -> bool:
    """Whether a throttled view (`every_s`, `last`, `total`) should show again now: its period has passed,
    or the batch is complete (the last state is always shown). Marks the time when it is."""
    now = time.monotonic()
    if now - view.last < view.every_s and len(records) < view.total:
        return False
    view.last = now
    return True


def _style(share: float | None) -> str:
    if share is None:
        return "grey50"
    return "green" if share >= 0.8 else "yellow" if share >= 0.4 else "red"


class TerminalView:
    """A rich Live panel on stderr, redrawn about 8 times a second."""

    def __init__(self, title: str, total: int, cores: int) -> None:
        from rich.console import Console
        from rich.live import Live

        self.title, self.total, self.cores = title, total, cores
        self.started = time.monotonic()
        self.depths: list[int] = []  # the broker's queue at each redraw of a load
        self.live = Live(console=Console(stderr=True), refresh_per_second=8, transient=False)
        self.live.start()

    def _render(self, records: list[dict], cores_now: float | None, arrivals: Arrivals | None = None):
        from rich.text import Text

        done, elapsed = len(records), time.monotonic() - self.started
        text = Text()
        text.append(f"{self.title}\n", style="bold")
        text.append(f"{done}/{self.total} tasks done · {elapsed:4.1f} s · CPU cores used now: ")
        text.append(f"{cores_now:.1f}" if cores_now is not None else "-", style="bold cyan")
        text.append(f" of {self.cores}\n")
        if arrivals is not None:
            text.append(f"arriving: {arrivals_text(arrivals, elapsed)}\n")
            if arrivals.queued is not None:
                self.depths.append(arrivals.queued)
                text.append(f"{'queue':>5} ")
                text.append(spark(self.depths[-60:]), style="magenta")
                text.append(f" max {max(self.depths)}\n")
        slots = lanes(records)
        width = max((len(s) for s in slots), default=4)
        for slot, shares in list(slots.items())[:24]:
            text.append(f"{slot:>{width}} ")
            for share in shares[-60:]:
                text.append(BLOCK, style=_style(share))
            text.append("\n")
        if len(slots) > 24:
            text.append(f"... and {len(slots) - 24} more slots\n")
        text.append("a block per finished task: ")
        for label, share in (("mostly on a CPU", 1.0), ("half", 0.5), ("mostly waiting (GIL, I/O)", 0.1)):
            text.append(BLOCK, style=_style(share))
            text.append(f" {label}  ")
        return text

    def __call__(self, records: list[dict], cores_now: float | None, arrivals: Arrivals | None = None) -> None:
        self.live.update(self._render(records, cores_now, arrivals))

    def close(self) -> None:
        self.live.stop()


class PlainLines:
    """A line at most every `every_s` seconds on stderr: for logs, pipes and CI."""

    def __init__(self, title: str, total: int, cores: int, every_s: float = 1.0, out=None) -> None:
        self.title, self.total, self.cores, self.every_s = title, total, cores, every_s
        self.out = out or sys.stderr
        self.started = self.last = time.monotonic()

    def __call__(self, records: list[dict], cores_now: float | None, arrivals: Arrivals | None = None) -> None:
        if not _due(self, records):
            return
        done, now = len(records), self.last
        cores = f"{cores_now:.1f}" if cores_now is not None else "-"
        arriving = f"{arrivals_text(arrivals, now - self.started)}, " if arrivals is not None else ""
        print(f"[{now - self.started:5.1f} s] {self.title}: {done}/{self.total} tasks done, {arriving}"
              f"{cores} of {self.cores} cores in use", file=self.out, flush=True)

    def close(self) -> None:
        pass


class NotebookView:
    """A figure in a notebook cell that grows as tasks finish: a lane per slot, a bar per finished task."""

    def __init__(self, title: str, total: int, cores: int, every_s: float = 0.5) -> None:
        from IPython.display import display

        self.title, self.total, self.cores, self.every_s = title, total, cores, every_s
        self.last = 0.0
        self.started = time.monotonic()
        self.handle = display(self._figure([], None), display_id=True)

    def _figure(self, records: list[dict], cores_now: float | None, arrivals: Arrivals | None = None):
        from harness.present.style import plt

        fig, ax = plt.subplots(figsize=(10, 3.2))
        if records:
            t0 = min(r["started"] for r in records)
            slots = {s: i for i, s in enumerate(lanes(records))}
            for r in records:
                run = r["finished"] - r["started"]
                share = min(1.0, r["cpu_s"] / run) if r.get("cpu_s") is not None and run > 0 else 0.0
                ax.barh(slots[str(r["slot"])], run, left=r["started"] - t0, height=0.7,
                        color=(0.19, 0.51, 0.74, 0.2 + 0.8 * share), edgecolor="#3182bd")
            ax.set_yticks(list(slots.values()))
            ax.set_yticklabels([f"slot {i + 1}" for i in slots.values()])
            ax.invert_yaxis()
        done = len(records)
        cores = f"{cores_now:.1f}" if cores_now is not None else "-"
        arriving = f" · {arrivals_text(arrivals, time.monotonic() - self.started)}" if arrivals is not None else ""
        ax.set_title(f"{self.title}: {done}/{self.total} done · {cores} of {self.cores} cores in use now{arriving}",
                     fontsize=13)
        ax.set_xlabel("seconds (darker: more of the task's time on a CPU)", fontsize=12)
        plt.close(fig)
        return fig

    def __call__(self, records: list[dict], cores_now: float | None, arrivals: Arrivals | None = None) -> None:
        if _due(self, records):
            self.handle.update(self._figure(list(records), cores_now, arrivals))

    def close(self) -> None:
        pass


def view_for_terminal(title: str, total: int, cores: int) -> TerminalView | PlainLines:
    """The rich view where stderr is a terminal, plain lines where it is not."""
    return TerminalView(title, total, cores) if sys.stderr.isatty() else PlainLines(title, total, cores)


def _title(spec: RunSpec) -> str:
    from harness.present.console import slots_text

    return f"{spec.pool} pool · {spec.task or spec.workload} · {slots_text(spec)}"


def _cores() -> int:
    from harness.model.machine import usable_cores

    return usable_cores()


def terminal(spec: RunSpec) -> TerminalView | PlainLines:
    """The live view of a run for a terminal or a log."""
    return view_for_terminal(_title(spec), spec.tasks + spec.background_tasks, _cores())


def notebook(spec: RunSpec) -> NotebookView:
    """The live view of a run in a notebook cell."""
    return NotebookView(_title(spec), spec.tasks + spec.background_tasks, _cores())


class BarPostfix:
    """A sweep's progress bar (tqdm) says how the run in progress goes: tasks done and cores in use."""

    def __init__(self, bar, total: int) -> None:
        self.bar, self.total = bar, total

    def __call__(self, records: list[dict], cores_now: float | None, arrivals: Arrivals | None = None) -> None:
        done = len(records)
        cores = f"{cores_now:.1f}" if cores_now is not None else "-"
        queued = f", {arrivals.queued} queued" if arrivals is not None and arrivals.queued is not None else ""
        self.bar.set_postfix_str(f"{done}/{self.total} tasks{queued}, {cores} cores", refresh=True)

    def close(self) -> None:
        self.bar.set_postfix_str("", refresh=False)
