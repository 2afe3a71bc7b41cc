"""What every HTML page of the lab shares: its style, figures with alt text, readable tables of numbers
and of settings, and paths shown without the machine's own prefixes."""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

import pandas as pd

from harness.project import PROJECT_ROOT

CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;
font-size:17px;line-height:1.45}h1{font-size:1.8em}table{border-collapse:collapse;font-size:.88em;margin:1em 0;
display:block;overflow-x:auto;max-width:100%}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th{background:#f3f3f3;vertical-align:bottom;max-width:9em}td.text,th.text{text-align:left}
img{max-width:100%;margin:1em 0}.reading li{margin:.4em 0;font-size:1.08em}
.caution{border-left:6px solid #d95f02;background:#fff4e8;padding:.2em 1em;margin:1em 0}
.trust-low{color:#b00020;font-weight:bold}.trust-medium{color:#8a6d00;font-weight:bold}
.trust-high{color:#1b7e3c;font-weight:bold}details{margin:1em 0}code{background:#f3f3f3;padding:0 .2em}"""

# How a table's columns are headed: words and units, not field names.
COLUMN_NAMES = {
    "label": "cell", "n": "repeats", "speedup": "speedup (x)", "speedup_95ci": "95% interval",
    "disturbed": "disturbed repeats", "unsteady": "unsteady repeats", "machine_drift": "machine drift",
    "steal_cores": "steal (cores)", "vs_solo": "tasks/s vs solo nearest in time (x)", "ideal_speedup": "ideal (x)",
    "efficiency": "efficiency",
    "makespan_s": "makespan (s)", "mean_tasks_running": "tasks running", "mean_cores_used": "CPU cores used",
    "pss_peak_mib": "memory (MiB PSS)", "gil_wait_mean_s": "GIL wait per task (s)",
    "task_stretch": "task time vs alone (x)", "second_start_delay_s": "2nd task starts after (s)",
    "rtt_mean_s": "I/O round trip (s)", "warning": "caution", "throughput_per_s": "tasks/s",
    "latency_p95_s": "p95 latency (s)", "work_inflation": "work inflation (x)",
    "other_cores_used": "other processes (cores)", "loop_lag_p95_s": "event loop lag p95 (s)",
    "loop_lag_max_s": "event loop lag max (s)",
}
TEXT_COLUMNS = ("label", "warning", "cell", "status", "pool", "workload", "kind", "name", "trust")
# What each figure shows, for readers who cannot see it (and for screen readers).
FIGURE_ALT = {
    "timeline": "Timeline: a lane per execution slot, a bar per task from its start to its finish, its own CPU "
                "time drawn inside the bar.",
    "parallelism": "Tasks running and CPU cores used by the worker over time, against the machine's cores.",
    "per_task": "Per task name of the mix: latency p50 and p95 (submit to finish), and the share of its run time "
                "on its own CPU and off it.",
    "gil": "Who held the GIL: a lane per worker thread, a band while it ran on a CPU, switch-interval ticks.",
    "speedup-by-pool": "Speedup over one task at a time, by pool and workload, with each pool's ideal.",
    "speedup-vs-concurrency": "Speedup against concurrency, a line per pool, the machine's cores marked.",
    "latency": "Per-task latency, submit to finish, as a box per cell.",
    "latency-spectrum": "An open-loop load's latency from each task's scheduled time at each percentile, the tail "
                        "spread out on 1/(1-p), beside a task's own run time.",
    "queue": "An open-loop load over time: the tasks in the system and the broker's queue, the arrivals shaded.",
    "switch-interval": "Delay before the second task starts and throughput, against the switch interval.",
    "crossover": "Speedup against a task's CPU fraction, a line per pool, where each falls behind.",
    "loop-lag": "How late the event loop woke a timer, each tenth of a second's worst and mean, over the tasks "
                "running: a task that does not yield holds every other.",
    "async": "Against tasks in flight, a line per pool: tasks per second, p95 latency, worker memory, the worker's "
             "CPU per task and the event loop's lag, a column per workload.",
    "topology": "Speedup and memory by how the slots are split among worker processes.",
    "dispatch-gap": "How long a free slot waited for queued work, by pool and prefetch multiplier.",
}


def tidy_path(value: Any) -> Any:
    """A path without this machine's prefixes: the project's folder as '.', the home folder as '~'."""
    if not isinstance(value, str):
        return value
    root, home = str(PROJECT_ROOT), os.path.expanduser("~")
    if value.startswith(root):
        return "." + value[len(root):]
    if home not in ("", "/") and value.startswith(home):
        return "~" + value[len(home):]
    return value


def img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    alt = FIGURE_ALT.get(path.stem, f"Figure: {path.stem.replace('-', ' ')}")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def page(title: str, question: str, sections: list[str]) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            + (f"<p><b>Question:</b> {html.escape(question)}</p>" if question else "")
            + f"{''.join(sections)}</body></html>")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def numbers_table(table: pd.DataFrame, columns: list[str]) -> str:
    """A table of numbers with worded headings; text columns left-aligned, numbers to three figures."""
    head = "".join(f"<th class='{'text' if c in TEXT_COLUMNS else ''}'>{html.escape(COLUMN_NAMES.get(c, c))}</th>"
                   for c in columns)
    rows = "".join("<tr>" + "".join(f"<td class='{'text' if c in TEXT_COLUMNS else ''}'>{_cell(row[c])}</td>"
                                    for c in columns) + "</tr>" for _, row in table.iterrows())
    return f"<table><tr>{head}</tr>{rows}</table>"


def settings_table(settings: dict, skip: tuple[str, ...] = ()) -> str:
    """Settings as a two-column table (nested ones as dotted names), paths tidied, empty ones left out."""
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif value not in (None, "", [], {}) and prefix not in skip:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else tidy_path(value)
            rows.append(f"<tr><th class='text'>{html.escape(prefix)}</th>"
                        f"<td class='text'>{html.escape(str(shown))}</td></tr>")

    walk("", settings)
    return f"<table>{''.join(rows)}</table>"
