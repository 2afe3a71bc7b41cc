"""Which pool, at which concurrency, for the user's own task: pure functions from measurements.

The advisor (harness.advisor.advise) first times the task alone, then asks `plan` which cells
to measure, runs them as a sweep, and gives the sweep's per-cell table to `recommend`. Nothing
here is written by hand per task: every number in the advice is one the lab measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.analysis.summary import BROKER_GAP_S, ran_waits_serially
from harness.analysis.trust import INFLATION_LIMIT
from harness.model.brokers import broker
from harness.model.pools import ADVISED_POOLS, BASELINE_POOL, POOLS, pool

# A task that spends less than this share of its time alone on its own CPU mostly waits: the advisor
# then also tries a high concurrency, where waits overlap by the dozen.
MOSTLY_WAITS = 0.5
# Two candidates whose speedups (or throughputs: ranking_metric) are within this share of each other are a
# close call (the repeats of one cell differ by about this much on a quiet 2-core machine).
CLOSE = 0.10
# Pools the advisor compares (their records say: harness.model.pools); the baseline only at concurrency 1.
CANDIDATE_POOLS = ADVISED_POOLS
# Pools the advisor adds when the user's task is a coroutine function (async def): those that await it on a loop.
COROUTINE_POOLS = tuple(name for name, p in POOLS.items() if p.awaits)


@dataclass(frozen=True)
class Plan:
    cells: list[dict[str, Any]]  # pool and concurrency of each cell
    levels: list[int]
    high: int | None             # the high level tried for pools that overlap waits, if any
    why: str


def high_concurrency(cores: int, cpu_share: float) -> int:
    """Enough slots to keep the cores busy when each task uses `cpu_share` of one while it runs,
    at least 8 per core, at most 128: a task with 5 % CPU needs about 20 running per core."""
    return int(min(128, max(8 * cores, math.ceil(cores / max(cpu_share, 1 / 128)))))


def plan(cores: int, cpu_share: float, pools: list[str]) -> Plan:
    """The cells to measure: solo at 1, and every candidate pool at the cores and at 4 x the cores;
    pools that overlap waits also at a high level when the task mostly waits."""
    levels = sorted({cores, 4 * cores})
    waits = cpu_share < MOSTLY_WAITS
    high = high_concurrency(cores, cpu_share) if waits else None
    cells = [{"pool": BASELINE_POOL, "concurrency": 1}] if BASELINE_POOL in pools else []
    candidates = [p for p in (*CANDIDATE_POOLS, *COROUTINE_POOLS) if p in pools]
    cheap = [p for p in candidates if pool(p).cheap_slots]
    for name in candidates:
        for level in levels + ([high] if high and name in cheap and high > levels[-1] else []):
            cells.append({"pool": name, "concurrency": level})
    why = (f"alone a task was {cpu_share:.0%} CPU: " + (f"it mostly waits, so {', '.join(cheap)} also run at "
                                                        f"{high}" if waits else "it mostly computes"))
    return Plan(cells, levels, high, why)


def tasks_for(concurrency: int) -> int:
    """Tasks per cell: two rounds of the pool's slots, and at least 8, so latencies have a p95."""
    return max(8, 2 * concurrency)


def plan_split(per_task: list[dict[str, Any]], cores: int, pools: list[str]) -> dict[str, Any] | None:
    """A queue split for a mix whose task kinds want different pools, to measure beside the single pools: the
    CPU-bound task names (own CPU at least analysis.mix.CPU_BOUND_SHARE of their run time, alone on the baseline)
    on a pool that runs Python in parallel, at the cores; the others on a pool with cheap slots (a green one where
    it imports, its waits overlapping by the dozen), at the high level. None when the mix is all of one kind."""
    from harness.analysis.mix import cpu_bound

    heavy = [r["task"] for r in per_task if cpu_bound(r)]
    light = [r for r in per_task if not cpu_bound(r)]
    parallel = [p for p in CANDIDATE_POOLS if p in pools and "python-cpu" in (pool(p).parallel_kinds or ())]
    cheap = sorted((p for p in CANDIDATE_POOLS if p in pools and pool(p).cheap_slots and not pool(p).deprecated),
                   key=lambda p: not pool(p).green)
    if not heavy or not light or not parallel or not cheap:
        return None
    light_share = max(float(r["cpu_share"] or 0.0) for r in light)
    high = high_concurrency(cores, light_share)
    return {"cpu_tasks": heavy, "cpu_pool": parallel[0], "cpu_concurrency": cores,
            "waiting_tasks": [r["task"] for r in light], "waiting_pool": cheap[0], "waiting_concurrency": high,
            "routes": ";".join(f"{name}={parallel[0]}:{cores}" for name in heavy)}


@dataclass
class Advice:
    pool: str
    concurrency: int
    reason: str
    close_call: bool
    candidates: pd.DataFrame  # one row per measured cell, best first
    runner_up: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    split: dict[str, Any] | None = None  # a measured queue split that beat every single pool (the user's app)
    alone_per_task: list[dict[str, Any]] | None = None  # a mix's task names one at a time on the baseline (the probe)

    def to_dict(self) -> dict[str, Any]:
        return {"pool": self.pool, "concurrency": self.concurrency, "reason": self.reason,
                "close_call": self.close_call, "runner_up": self.runner_up, "notes": self.notes,
                "split": self.split, "candidates": self.candidates.to_dict(orient="records")}


def split_advice(singles: pd.DataFrame, splits: pd.DataFrame, plan: dict[str, Any],
                 app: str | None) -> dict[str, Any] | None:
    """The measured split against the best single pool on the same replay: what to route where, with the
    task_routes and the two worker command lines; None where no split was measured. `recommended` only where it
    beat the best single pool by more than CLOSE."""
    done = splits[splits["throughput_per_s"].notna()] if len(splits) else splits
    if done.empty or singles.empty:
        return None
    split = done.sort_values("throughput_per_s", ascending=False).iloc[0]
    best = singles.sort_values("throughput_per_s", ascending=False).iloc[0]
    ratio = float(split["throughput_per_s"]) / float(best["throughput_per_s"])
    same_pool = singles[singles["pool"] == plan["waiting_pool"]]
    on_waiting = (float(split["throughput_per_s"]) / float(same_pool["throughput_per_s"].max())
                  if len(same_pool) and same_pool["throughput_per_s"].max() > 0 else None)
    cpu_queue, io_queue = "cpu", "io"
    routes = {**{t: {"queue": cpu_queue} for t in plan["cpu_tasks"]},
              **{t: {"queue": io_queue} for t in plan["waiting_tasks"]}}
    target = app or "proj"
    return {
        "recommended": ratio > 1 + CLOSE,
        "ratio": ratio, "throughput_per_s": float(split["throughput_per_s"]),
        "best_single": {"pool": str(best["pool"]), "concurrency": int(best["concurrency"]),
                        "throughput_per_s": float(best["throughput_per_s"])},
        "vs_waiting_pool_alone": on_waiting,
        "latency_p95_s": _plain(split.get("latency_p95_s")), **plan,
        "task_routes": routes,
        "commands": [f"celery -A {target} worker -P {plan['cpu_pool']} -c {plan['cpu_concurrency']} -Q {cpu_queue}",
                     f"celery -A {target} worker -P {plan['waiting_pool']} -c {plan['waiting_concurrency']} "
                     f"-Q {io_queue}"],
    }


def split_sentence(split: dict[str, Any]) -> str:
    """The split in one sentence, with the numbers it rests on."""
    verb = "Route" if split["recommended"] else "A split measured, not worth it:"
    best = split["best_single"]
    return (f"{verb} {', '.join(split['cpu_tasks'])} to a {split['cpu_pool']} queue (c={split['cpu_concurrency']}) "
            f"and {', '.join(split['waiting_tasks'])} to a {split['waiting_pool']} queue "
            f"(c={split['waiting_concurrency']}): {split['throughput_per_s']:.3g} tasks/s, {split['ratio']:.2f}x the "
            f"mix's throughput on the best single pool ({best['pool']} at {best['concurrency']}, "
            f"{best['throughput_per_s']:.3g} tasks/s)"
            + (f" and {split['vs_waiting_pool_alone']:.2f}x on one {split['waiting_pool']} pool"
               if split.get("vs_waiting_pool_alone") and split["waiting_pool"] != best["pool"] else "") + ".")


COLUMNS = {  # candidate table: summary metric -> what the table calls it
    "pool": "pool", "concurrency": "concurrency", "routes": "routed to their own workers",
    "throughput_per_s": "tasks/s", "speedup": "vs one at a time",
    "latency_p95_s": "p95 latency (s)", "pss_peak_mib": "memory (MiB PSS)", "rss_peak_mib": "RSS (MiB)",
    "mean_cores_used": "CPU cores used", "task_stretch": "task time vs alone", "gil_wait_fraction": "GIL wait",
    "work_inflation": "work inflation",
}


def _memory(row: pd.Series) -> float:
    """The memory a candidate costs: its worker's peak PSS (shared pages split between the processes
    sharing them, so a prefork tree is not counted twice) where the OS gives it, else RSS."""
    pss = row.get("pss_peak_mib")
    return float(pss) if pss is not None and pd.notna(pss) else float(row.get("rss_peak_mib") or math.nan)


def ranking_metric(table: pd.DataFrame) -> str:
    """What the candidates are ranked by: their speedup, each against the same task timed alone in the same
    run, where every cell has one; else tasks/s.

    Both order the cells alike on a machine of constant speed (the speedup is tasks/s times the time alone).
    On one whose speed drifts (2x within seconds here) they do not: tasks/s of cells measured minutes apart
    compares the moments as much as the pools, and a solo cell run in a fast moment outran prefork in a slow
    one (the advisor then recommended solo for CPU work). The speedup's reference was timed beside the cell's
    own batch, at the same speed."""
    if "speedup" in table and len(table) and table["speedup"].notna().all():
        return "speedup"
    return "throughput_per_s"


def _ranked(rows: pd.DataFrame) -> pd.DataFrame:
    """Best first by the ranking metric, a speedup counted no higher than its pool's physical ideal (more is an
    unsteady reference's doing, harness.analysis.trust.above_ideal). Cells with unsteady repeats are not ranked
    down: on this VM more than half of all runs are (BENCHMARKS.md, fidelity), and the ideal's cap already
    takes what drift can add; the advice says how many there were (`recommend`'s notes)."""
    metric = ranking_metric(rows)
    value = rows[metric].astype(float)
    if metric == "speedup" and "ideal_speedup" in rows:
        ideal = pd.to_numeric(rows["ideal_speedup"], errors="coerce")
        value = value.where(ideal.isna(), value.clip(upper=ideal))
    return rows.assign(_rank_value=value).sort_values("_rank_value", ascending=False, kind="stable")


def candidates(table: pd.DataFrame) -> pd.DataFrame:
    """The sweep table's cells, best first (ranking_metric), with the columns the advice shows."""
    rows = _with_columns(table)
    shown = [c for c in COLUMNS if c in ("pool", "concurrency") or (c in rows and rows[c].notna().any())]
    return _ranked(rows)[shown].reset_index(drop=True)


def _with_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every column the advice reads (NaN where the sweep had none), in one block (pandas warns of a
    frame built a column at a time)."""
    return table.copy().assign(**{c: math.nan for c in COLUMNS if c not in table})


def recommend(table: pd.DataFrame, cpu_share: float, split_plan: dict[str, Any] | None = None,
              app: str | None = None, broker_name: str = "redis") -> Advice:
    """The single pool to choose (`_recommend_single`) and, for the user's app, the measured queue split
    (`split_plan`'s cell, the one with ROUTES) against it: recommended where it beat every single pool."""
    routed = table["routes"].notna() & (table["routes"].astype(str) != "") if "routes" in table else None
    singles = table[~routed] if routed is not None else table
    advice = _recommend_single(singles.reset_index(drop=True), cpu_share)
    said = _broker_gap(table, broker_name)
    if said:
        advice.notes.append(said)
    if routed is not None and split_plan:
        advice.candidates = candidates(table)
        advice.split = split_advice(singles, table[routed], split_plan, app)
        if advice.split is not None:
            sentence = split_sentence(advice.split)
            if advice.split["recommended"]:
                advice.reason = f"{advice.reason} Better still, split the queues: {sentence}"
            else:
                advice.notes.append(sentence)
    return advice


def _recommend_single(table: pd.DataFrame, cpu_share: float) -> Advice:
    """The pool and concurrency with the highest measured speedup (or tasks/s: ranking_metric); among settings
    within CLOSE of it (any pool, any concurrency), the one with the least memory. A close call is one between
    pools.

    `table` is the advisor sweep's per-cell table (medians over repeats; stats.sweep_table) with
    pool and concurrency columns; `cpu_share` the task's own CPU over its run time, alone.
    """
    if table.empty or "throughput_per_s" not in table or table["throughput_per_s"].isna().all():
        raise ValueError("no cell of the advisor's sweep completed: nothing to recommend")
    by_speedup = ranking_metric(table) == "speedup"
    ranked = _ranked(_with_columns(table)).reset_index(drop=True)
    metric = "_rank_value"
    leader = ranked.iloc[0]
    # Every setting as fast as the leader within the noise; of those, the one that costs the least memory.
    close = ranked[ranked[metric] >= (1 - CLOSE) * leader[metric]]
    chosen = close.loc[close.apply(_memory, axis=1).fillna(math.inf).idxmin()] if len(close) > 1 else leader
    close_call = close["pool"].nunique() > 1
    best_per_pool = ranked.groupby("pool", sort=False).head(1).reset_index(drop=True)
    best_per_pool.loc[best_per_pool["pool"] == chosen["pool"]] = chosen.to_numpy()
    others = best_per_pool[best_per_pool["pool"] != chosen["pool"]]
    runner = others.iloc[0] if len(others) else None
    reason = _reason(chosen, best_per_pool, cpu_share, close_call)
    notes = []
    if len(close) > 1:
        names = ", ".join(f"{r.pool} at {r.concurrency} ("
                          + (f"{r.speedup:.2f}x, " if by_speedup else "") + f"{r.throughput_per_s:.3g} tasks/s)"
                          for r in close.itertuples())
        notes.append(f"{'A close call: ' if close_call else ''}{names} are within {CLOSE:.0%} of the fastest; "
                     f"{chosen['pool']} at {int(chosen['concurrency'])} is chosen for its memory."
                     + (" Rerun with more repeats to separate them." if close_call else ""))
    marked = _marked_settings(table)
    if marked:
        notes.append(f"{marked} of {len(table)} settings had a repeat measured while other processes were busy or the "
                     "machine's own speed changed (DISTURBED or UNSTEADY): their numbers are less sure; rerun "
                     "the advice (without QUICK, for more repeats) before a close decision.")
    inflation = chosen.get("work_inflation")
    if inflation is not None and pd.notna(inflation) and inflation > INFLATION_LIMIT:
        notes.append(f"Each task burned {inflation:.2f}x its CPU alone at this setting: the tasks contend.")
    return Advice(str(chosen["pool"]), int(chosen["concurrency"]), reason, close_call, candidates(table),
                  {k: _plain(runner[k]) for k in ("pool", "concurrency", "throughput_per_s")} if runner is not None
                  else None, notes)


def _broker_gap(table: pd.DataFrame, broker_name: str) -> str:
    """Where the broker, not the pool, explains a loss in the advisor's table: green pools whose free slots waited
    seconds for queued work on a polling broker (harness.analysis.summary.broker_gap_note). "" otherwise."""
    if "dispatch_gap_max_s" not in table or broker(broker_name).pushes:
        return ""
    hit = table[table["pool"].map(lambda p: pool(str(p)).green)
                & (pd.to_numeric(table["dispatch_gap_max_s"], errors="coerce") >= BROKER_GAP_S)]
    if hit.empty:
        return ""
    names = ", ".join(dict.fromkeys(f"{r.pool} at {int(r.concurrency)}" for r in hit.itertuples()))
    return (f"{names}: free slots waited up to {float(hit['dispatch_gap_max_s'].max()):.2f} s for queued work. That "
            "is the broker's doing, not the pool's: Redis's polling transport with the green pools' synloop at a "
            "prefetch limit. Through RabbitMQ (BROKER=rabbitmq) or with PREFETCH=0 the gap was milliseconds "
            "(experiments/brokers.toml).")


def _marked_settings(table: pd.DataFrame) -> int:
    """How many cells had a disturbed or unsteady repeat."""
    counts = [pd.to_numeric(table[c], errors="coerce").fillna(0) for c in ("disturbed", "unsteady") if c in table]
    return int((sum(counts) > 0).sum()) if counts else 0


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _reason(chosen: pd.Series, best_per_pool: pd.DataFrame, cpu_share: float, close: bool) -> str:
    """One sentence from the measurements: the task's CPU share, what each pool gained, at what memory."""
    base = best_per_pool.set_index("pool").loc[BASELINE_POOL] if BASELINE_POOL in set(best_per_pool["pool"]) else None
    base_memory = _memory(base) if base is not None else None
    base_rate = float(base["throughput_per_s"]) if base is not None and pd.notna(base["throughput_per_s"]) else None
    gains = []
    for row in best_per_pool.itertuples():
        if row.pool == BASELINE_POOL:
            continue
        # A mix of calls has no speedup: its tasks/s over the baseline's on the same replay says the same.
        part = (f"{row.pool} {row.speedup:.1f}x" if pd.notna(row.speedup) else
                f"{row.pool} {row.throughput_per_s / base_rate:.1f}x" if base_rate and pd.notna(row.throughput_per_s)
                else f"{row.pool} n/a")
        memory = _memory(pd.Series(row._asdict()))
        if base_memory and pd.notna(memory):
            part += f" at {memory / base_memory:.1f}x the memory"
        gains.append(part)
    mix = best_per_pool["speedup"].isna().all()  # the user's app's mix: tasks/s against the baseline's
    whose = "the mix's time on one slot" if mix else "a task's time alone"
    share = (f"{cpu_share:.0%} of {whose} is CPU" + (" under the GIL" if cpu_share >= MOSTLY_WAITS else "")
             if cpu_share is not None and pd.notna(cpu_share) else "a task's CPU share is unknown")
    blocked = _serial_sentence(best_per_pool)
    verdict = (f"{chosen['pool']} at concurrency {int(chosen['concurrency'])}: {chosen['throughput_per_s']:.3g} tasks/s"
               + (" (a close call)" if close else ""))
    over = f"the tasks/s of {BASELINE_POOL}" if mix else "one at a time"
    return f"{share}: {', '.join(gains)} over {over}.{blocked} Choose {verdict}."


def _serial_sentence(best_per_pool: pd.DataFrame) -> str:
    """The green trap in the user's task, from the measurements (not from what it imports): the pools that should
    overlap its waits but ran it one at a time even at their best setting, and what that means. "" when none did."""
    if "max_tasks_running" not in best_per_pool or "task_cpu_share" not in best_per_pool:
        return ""
    serial = [row for row in best_per_pool.itertuples()
              if pd.notna(row.max_tasks_running) and pd.notna(row.task_cpu_share)
              and ran_waits_serially(str(row.pool), int(row.concurrency), 2, float(row.max_tasks_running),
                                     float(row.mean_tasks_running), float(row.task_cpu_share), float(row.speedup))]
    if not serial:
        return ""
    parts = []
    for row in serial:
        green = pool(str(row.pool)).green
        ran = (f"{row.mean_tasks_running:.1f} at once" if row.max_tasks_running <= 1 else
               f"{row.speedup:.1f}x one at a time")
        parts.append(f" {row.pool} ran your tasks about one at a time ({ran} at concurrency {int(row.concurrency)}) "
                     f"though each was {row.task_cpu_share:.0%} CPU: something your task calls "
                     + ("waits without yielding to the event loop (a C driver such as psycopg2 without psycogreen, or "
                        "pycurl); a driver that yields would let it overlap the waits." if green else
                        "holds the GIL while it waits."))
    return "".join(parts)


# --- advice at a rate (make advise RATE=120 SLO='p95<0.5s') -----------------------------------------------------

# The pools whose capacity the advice at a rate searches: the recommended one and the best of the others, in the
# order the batch advice ranked them. Each search is a minute or two of loads.
RATE_CANDIDATES = 2
# A worker counts as fitting on this machine beside the others while their cores (each as it used them at its
# capacity) stay within this share of the machine's: the rest is the broker's, the submitter's and the OS's.
FITS_SHARE = 0.9


def rate_candidates(advice: Advice) -> list[dict[str, Any]]:
    """The settings whose capacity to search: the recommendation, then the best setting of each other pool by the
    batch's ranking, RATE_CANDIDATES in all. Where the batch advice recommends splitting the user's app by queue, the
    split first (its cpu queue's worker beside the waiting pool's, as ROUTES runs them: one 'worker' of the advice
    at a rate is then that pair)."""
    chosen = {"pool": advice.pool, "concurrency": advice.concurrency}
    others = [{"pool": str(r["pool"]), "concurrency": int(r["concurrency"])}
              for _, r in advice.candidates.iterrows()
              if str(r["pool"]) != advice.pool and str(r["pool"]) != BASELINE_POOL
              and not (isinstance(r.get("routes"), str) and r.get("routes"))]
    seen, out = set(), []
    for cell in [chosen, *others]:
        if cell["pool"] not in seen:
            seen.add(cell["pool"])
            out.append(cell)
    out = out[:RATE_CANDIDATES]
    if advice.split is not None and advice.split["recommended"]:  # the user's app split by queue: searched first
        split = advice.split
        out = [{"pool": split["waiting_pool"], "concurrency": split["waiting_concurrency"],
                "routes": split["routes"]}, *out[:RATE_CANDIDATES - 1]]
    return out


@dataclass(frozen=True)
class RatePlan:
    workers: int         # worker processes the rate needs, each holding what one held here
    here: int            # how many of them this machine can run beside each other (at most `workers`)
    verify_rate: float   # the rate to offer `here` workers: the target, or 90 % of what `here` workers should hold

    @property
    def extrapolated(self) -> bool:
        return self.here < self.workers


def plan_rate(rate: float, capacity: float, cores_used: float | None, cores: int, max_workers: int) -> RatePlan:
    """How many workers of a setting that holds `capacity` tasks/s each (using `cores_used` cores there) a rate
    needs, how many of them fit on this machine, and what to offer those to check it. Pure."""
    workers = max(1, math.ceil(rate / capacity))
    fit = max(1, int(FITS_SHARE * cores / cores_used)) if cores_used and cores_used > 0 else 1
    here = min(workers, fit, max_workers)
    verify = rate if here == workers else round(0.9 * here * capacity, 3)
    return RatePlan(workers, here, verify)


def rate_sentence(rate: float, slo_text: str, pool_name: str, concurrency: int, capacity: float,
                  cores_used: float | None, plan: RatePlan, verified: dict[str, Any] | None) -> str:
    """The advice at a rate in a few sentences, with the numbers it rests on: what one worker holds, how many workers
    the rate needs and the headroom that leaves, what was measured with how many workers, and what is extrapolated
    (marked EXTRAPOLATED)."""
    one = (f"One {pool_name} worker at concurrency {concurrency} holds {capacity:.3g} tasks/s within {slo_text}"
           + (f", using {cores_used:.2f} cores" if cores_used else "") + ".")
    headroom = plan.workers * capacity / rate - 1
    need = (f" {rate:g} tasks/s needs {plan.workers} such worker{'s' if plan.workers > 1 else ''} "
            f"({plan.workers * capacity:.3g} tasks/s between them: {headroom:.0%} headroom).")
    if verified is None:
        return one + need + " Not checked with a load here."
    at = (f"{verified['workers']} worker{'s' if verified['workers'] > 1 else ''} offered {verified['rate']:g} tasks/s "
          f"here: p{verified['percentile']:g} {verified['latency_slo_s'] * 1000:.0f} ms"
          if verified.get("latency_slo_s") is not None else
          f"{verified['workers']} worker(s) offered {verified['rate']:g} tasks/s here: no latency")
    held = verified.get("held")
    measured = f" Measured: {at}, " + ("held." if held else "NOT held" + (" (saturated)" if verified.get("saturated")
                                                                          else "") + ".")
    if not plan.extrapolated:
        return one + need + measured
    per_worker = (f" (each used {cores_used:.2f} cores; {plan.here} fit on this machine's cores)" if cores_used
                  else "")
    return (one + need + measured + f" EXTRAPOLATED: {plan.workers} workers is {plan.workers / plan.here:.1f}x the "
            f"{plan.here} measured here{per_worker}; it assumes each has cores of its own like these and a broker "
            "that keeps up.")
