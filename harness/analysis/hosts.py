"""A run on several hosts (HOSTS=), per host: its tasks, the cores its workers used, its machine's cores, its clock.
Pure, no I/O: from the run's tasks, its samples (each host's with a `host` column, on the broker's clock) and what
run.json keeps of the fleet (harness.lab.remote_workers.RemoteWorkers.record).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from harness.analysis.clock import ClockOffset, too_uncertain
from harness.analysis.cpu import cpu_seconds_between
from harness.model.hosts import machine_of


def per_host(foreground: pd.DataFrame, samples: pd.DataFrame, fleet: dict[str, Any], hosts: list[str],
             host_of_worker: dict[int, str]) -> list[dict[str, Any]]:
    """One row per host: tasks done there, the cores its workers used while the batch ran, its machine's cores, and
    its clock's offset from the broker's and how well it is known."""
    if foreground.empty:
        return []
    start, end = float(foreground["started"].min()), float(foreground["finished"].max())
    span = end - start
    where = foreground["worker"].map(lambda w: host_of_worker.get(int(w))) if "worker" in foreground else None
    out = []
    for host in hosts:
        record = (fleet.get("hosts") or {}).get(host) or {}
        described = record.get("described") or {}
        clock = record.get("clock") or {}
        mine = samples[(samples["kind"] == "process") & (samples["host"] == host)] if "host" in samples else samples[:0]
        used = cpu_seconds_between(mine, start, end) / span if span > 0 and len(mine) else float("nan")
        out.append({"host": host, "tasks": int((where == host).sum()) if where is not None else 0,
                    "cores_used": used, "cores": described.get("cores"), "machine": machine_of(host, described),
                    "clock_offset_s": clock.get("offset_s"), "clock_uncertainty_s": clock.get("uncertainty_s")})
    return out


def hosts_note(rows: list[dict[str, Any]], harness_clock: dict[str, Any] | None, ideal_cores: int) -> str:
    """HOSTS: where the tasks ran and on how many cores, each host's clock against the broker's, and what the ideal
    counts (hosts that are one machine share its cores)."""
    parts = []
    for r in rows:
        used = f"{r['cores_used']:.2f}" if r["cores_used"] == r["cores_used"] else "?"
        clock = (f", clock {1000 * r['clock_offset_s']:+.3f} ms +- {1000 * r['clock_uncertainty_s']:.3f}"
                 if r["clock_offset_s"] is not None else ", clock not measured")
        parts.append(f"{r['host']} ran {r['tasks']} tasks on {used} cores of {r['cores'] or '?'}{clock}")
    machines = {r["machine"] for r in rows}
    shared = (f"; the hosts are {len(machines)} machine{'s' if len(machines) > 1 else ''}, whose {ideal_cores} cores "
              "the ideal counts once" if len(machines) < len(rows) else f"; the ideal counts their {ideal_cores} cores")
    mine = (f" (the harness's clock {1000 * harness_clock['offset_s']:+.3f} ms)" if harness_clock else "")
    return "HOSTS: " + "; ".join(parts) + shared + ". Every time is on the broker's clock" + mine + "."


def clock_note(rows: list[dict[str, Any]], shortest_task_s: float, harness_clock: dict[str, Any] | None = None
               ) -> str | None:
    """CLOCKS: a host whose clock, with the harness's (its sending times are shifted too), is known too loosely for the
    run's shortest task (harness.analysis.clock)."""
    mine = float((harness_clock or {}).get("uncertainty_s") or 0.0)
    loose = [r for r in rows if r["clock_uncertainty_s"] is not None and too_uncertain(
        ClockOffset(r["clock_offset_s"] or 0.0, r["clock_uncertainty_s"] + mine, 1), shortest_task_s)]
    unmeasured = [r["host"] for r in rows if r["clock_offset_s"] is None]
    if not loose and not unmeasured:
        return None
    said = [f"{r['host']}'s clock is known to +- {1000 * (r['clock_uncertainty_s'] + mine):.2f} ms" for r in loose]
    said += [f"{h}'s clock was not measured after the run" for h in unmeasured]
    return (f"CLOCKS: {'; '.join(said)}, against a shortest task of {1000 * shortest_task_s:.1f} ms: its tasks' "
            "times (queue waits, overlaps) may be off by as much.")
