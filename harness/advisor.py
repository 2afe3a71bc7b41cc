"""The pool advisor's order of steps: time the task alone, plan the cells, run them as a sweep.

What to measure and what to recommend are decided by pure functions in harness.analysis.advice;
this module only runs them, through the same pipeline as any sweep.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.analysis.advice import Advice
from harness.errors import SpecError, UsageError
from harness.model.experiment import Experiment
from harness.model.pools import BASELINE_POOL
from harness.model.settings import SETTINGS
from harness.model.slo import Slo
from harness.model.spec import RunSpec, build_spec
from harness.pipeline import Log, advice_of, run_bench  # noqa: F401 (advice_of: re-exported)
from harness.results.paths import RESULTS_DIR
from harness.results.records import AdvisorRecord, Role
from harness.results.sweep_folder import load_sweep_manifest, write_sweep_manifest
from harness.sweeps import run_sweep, start_sweep

# Settings the advisor chooses itself, so a user may not give them; for the user's app it replays the whole mix
# (TASKS may size it) and chooses the routes of a queue split.
ADVISOR_CHOOSES = ("pool", "concurrency", "tasks")
ADVISOR_CHOOSES_FOR_APP = ("pool", "concurrency", "routes")


def advise(raw: dict, results_dir: str | Path = RESULTS_DIR, once: bool = False, redis_url: str | None = None,
           log: Log = print, show_progress: bool = False) -> Path:
    """Measure a task (the user's own, or a built-in workload) under every pool that can run it, at a few
    concurrency levels chosen from how it behaves alone, and recommend one. Returns the sweep folder."""
    from harness.analysis import advice as advising
    from harness.lab.preflight import check_pool_importable
    from harness.lab.services.redis_broker import RedisBroker
    from harness.model.machine import usable_cores

    app = raw.get("app") not in (None, "")
    chooses = ADVISOR_CHOOSES_FOR_APP if app else ADVISOR_CHOOSES
    given = [name for name in chooses if raw.get(name) not in (None, "")]
    if given:
        raise UsageError(f"the advisor chooses {', '.join(chooses)} itself; leave out "
                         f"{', '.join(SETTINGS[n].make for n in given)}")
    # Every setting checked here. A mix of the user's calls is replayed whole in every cell (the same work for
    # each pool); one task of the lab's or of TASK=module:function three times alone.
    base = build_spec(**{**raw, "pool": BASELINE_POOL, "concurrency": 1, **({} if app else {"tasks": 3})})
    # A mix whose size nothing gave (TASK names, or a sample of weights): sized here, the probe to see each name.
    sized = not app or raw.get("tasks") not in (None, "") or _counted(base)
    if not sized:
        base = build_spec(**{**raw, "pool": BASELINE_POOL, "concurrency": 1, "tasks": PROBE_MIX_TASKS})
    pools = [BASELINE_POOL]
    for name in advising.CANDIDATE_POOLS:
        try:
            check_pool_importable(name)
            pools.append(name)
        except SpecError as exc:
            log(f"advisor: leaving out {name}: {exc}")
    fixed = {k: v for k, v in base.to_dict().items()
             if k not in ADVISOR_CHOOSES and v is not None and v != SETTINGS[k].default and k != "prefetch"}
    with RedisBroker(redis_url) as broker:
        # One at a time first: how long a task takes alone and how much of that is its own CPU.
        log(f"advisor: timing {_task_label(base)} alone on the {BASELINE_POOL} pool"
            + (f" ({base.tasks} calls, one at a time)" if app else ""))
        probe = run_bench(base, results_dir=Path(results_dir), redis_url=broker.url, log=lambda _l: None,
                          mark_latest=False)
        summary = probe.summary
        assert summary is not None  # run_bench returns a complete run, summarized
        cpu_share = summary.alone_cpu_share
        if cpu_share is None:
            cpu_share = summary.task_cpu_share
        if (probe.manifest.settings.extra.get("own_task") or {}).get("coroutine"):  # async def: a pool that awaits it
            for name in advising.COROUTINE_POOLS:
                try:
                    check_pool_importable(name)
                    pools.append(name)
                    log(f"advisor: {base.task} is a coroutine function: measuring the {name} pool too")
                except SpecError as exc:
                    log(f"advisor: leaving out {name}: {exc}")
        cores = usable_cores()
        plan = advising.plan(cores, float(cpu_share), pools)
        log(f"advisor: {plan.why}; measuring {len(plan.cells)} settings"
            + (" once each" if once else f" {ADVISOR_REPEATS} times each"))
        # Every cell of a mix replays the same calls: the sample's size, or two rounds of the most slots planned.
        mix_tasks = base.tasks if sized else max(advising.tasks_for(c["concurrency"]) for c in plan.cells)
        cells = [{**c, "tasks": mix_tasks if app else advising.tasks_for(c["concurrency"])} for c in plan.cells]
        split = advising.plan_split(summary.per_task or [], cores, pools) if app else None
        if split is not None:  # measured as one more cell: two workers, two queues, one run
            cells = [{**c, "routes": None} for c in cells]
            cells.append({"pool": split["waiting_pool"], "concurrency": split["waiting_concurrency"],
                          "routes": split["routes"], "tasks": mix_tasks})
            log(f"advisor: {', '.join(split['cpu_tasks'])} mostly compute and {', '.join(split['waiting_tasks'])} "
                f"mostly wait: also measuring them split, on {split['cpu_pool']} and {split['waiting_pool']} queues")
        experiment = Experiment(path="(advisor)", name=f"advise-{_task_label(base)}",
                                question=f"Which pool, at which concurrency, for {base.task or base.workload}?",
                                repeats=1 if once else ADVISOR_REPEATS, fixed=fixed,
                                axes={"pool": list(dict.fromkeys(c["pool"] for c in cells)),
                                      "concurrency": sorted({c["concurrency"] for c in cells}),
                                      "tasks": sorted({c["tasks"] for c in cells}),
                                      **({"routes": [None, split["routes"]]} if split else {})}, only=cells)
        folder = start_sweep(experiment, False, results_dir)
        manifest = load_sweep_manifest(folder)
        manifest.advisor = AdvisorRecord(cpu_share=float(cpu_share), alone_s=summary.alone_s,
                                         probe_run=str(probe.path), cores=cores, plan=plan.why,
                                         app=base.app, split=split, per_task=summary.per_task)
        write_sweep_manifest(folder, manifest)
        run_sweep(folder, redis_url=broker.url, log=log, show_progress=show_progress)
    return folder


ADVISOR_REPEATS = 2
# Calls in the probe of a mix whose size nothing gave: enough for each of a few task names to run alone.
PROBE_MIX_TASKS = 16


def _counted(spec: RunSpec) -> bool:
    """Whether the mix's size is its sample's counts (one pass of CALLS), not the settings' fallback."""
    from harness.model.calls import load_calls, sample_size

    return spec.calls is not None and sample_size(load_calls(spec.calls)) is not None


def _task_label(spec: RunSpec) -> str:
    if spec.app:
        return f"{spec.app.replace(':', '.').split('.')[0]}-mix"
    return (spec.task.replace(":", ".").split(".")[-1] if spec.task else spec.workload)


def advise_at_rate(folder: Path, advice: Advice, settings: dict, slo: Slo, redis_url: str | None = None,
                   log: Log = print) -> dict:
    """After the batch advice (`advise`): the capacity of its best settings at an SLO, one worker each (a capacity
    search per setting, harness.capacity), the workers the rate needs on the best of them, and one load at the rate
    with as many of those workers as fit on this machine (or at what those should hold, when fewer fit: the rest is
    extrapolated and marked). `settings` are the user's, with RATE and the load's shape; rate.json in the advisor's
    folder keeps it all."""
    from harness import capacity
    from harness.analysis import advice as advising
    from harness.analysis.load import latency_at
    from harness.lab.services.redis_broker import RedisBroker
    from harness.model.machine import usable_cores
    from harness.model.settings import MAX_WORKERS
    from harness.present.sweep_figures import hockey_sticks
    from harness.results.run_folder import tasks_of

    rate = float(settings["rate"])
    shape = {k: settings[k] for k in ("load_time", "arrivals", "warmup", "seed") if settings.get(k) is not None}
    base = {k: v for k, v in settings.items() if k not in ("rate", "tasks", *ADVISOR_CHOOSES, *shape)}
    cells = advising.rate_candidates(advice)
    log(f"advisor: at {rate:g} tasks/s within {slo.text}: the capacity of "
        + ", ".join(f"{c['pool']} at {c['concurrency']}" + (" split by queue" if c.get("routes") else "")
                    for c in cells) + ", one worker each")
    searches = []
    with RedisBroker(redis_url) as broker:
        def measure(spec: RunSpec, into: Path):
            return run_bench(spec, results_dir=into, redis_url=broker.url, log=lambda _l: None, mark_latest=False)

        for i, cell in enumerate(cells):
            found, _ = capacity.search({**base, **shape, **cell}, slo, folder / "rate", measure, log=log,
                                       label=f"{i + 1:02d}-{cell['pool']}-{cell['concurrency']}")
            log(capacity.sentence(found))
            searches.append((cell, found))
        held = [(cell, found) for cell, found in searches if found.capacity]
        verified = None
        best: tuple[dict, capacity.Capacity] | None = max(held, key=lambda h: h[1].capacity or 0) if held else None
        plan = None
        if best is not None:
            cell, found = best
            data = found.to_dict()
            plan = advising.plan_rate(rate, float(found.capacity or 0), data["cores_used"], usable_cores(), MAX_WORKERS)
            log(f"advisor: {plan.workers} worker(s) needed; offering {plan.verify_rate:g} tasks/s to {plan.here} here")
            run = measure(build_spec(**{**base, **shape, **cell, "workers": plan.here, "rate": plan.verify_rate}),
                          folder / "rate" / "check")
            load = run.summary.load if run.summary is not None else None
            late = (latency_at(tasks_of(run.tasks, Role.FOREGROUND), run.spec.warmup or 0, slo.percentile)
                    if load is not None else None)
            verified = {"workers": plan.here, "rate": plan.verify_rate, "run": str(run.path),
                        "percentile": slo.percentile, "latency_slo_s": late,
                        "saturated": bool(load.saturated) if load is not None else None,
                        "held": bool(load is not None and not load.saturated and not load.submitter_behind
                                     and late is not None and late <= slo.limit_s)}
    sentence = (advising.rate_sentence(rate, slo.text, best[0]["pool"], best[0]["concurrency"],
                                       float(best[1].capacity or 0), best[1].to_dict()["cores_used"], plan, verified)
                if best is not None and plan is not None else
                f"No setting measured held any rate tried within {slo.text}: " + "; ".join(
                    capacity.sentence(f) for _, f in searches))
    if best is not None and best[0].get("routes"):
        split = advice.split or {}
        sentence += (f" Each such worker is the split's pair: {split.get('cpu_pool')} at {split.get('cpu_concurrency')}"
                     f" on the cpu queue beside {split.get('waiting_pool')} at {split.get('waiting_concurrency')} on "
                     "the io queue.")
    hockey_sticks([{**found.to_dict(), "pool": f"{cell['pool']} at {cell['concurrency']}"
                    + (" split" if cell.get("routes") else "")} for cell, found in searches],
                  slo.percentile, slo.limit_s, f"one worker each: latency against offered load ({slo.text})",
                  folder / "rate.png")
    out = {"rate": rate, "slo": slo.text, "searches": [{**cell, **found.to_dict()} for cell, found in searches],
           "chosen": best[0] if best is not None else None,
           "plan": {"workers": plan.workers, "here": plan.here, "verify_rate": plan.verify_rate,
                    "extrapolated": plan.extrapolated} if plan is not None else None,
           "verified": verified, "sentence": sentence}
    (folder / "rate.json").write_text(json.dumps(out, indent=1) + "\n")
    return out
