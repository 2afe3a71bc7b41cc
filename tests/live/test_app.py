"""Your real Celery app: the example Django shop (examples/django_shop) run by its own worker under prefork,
threads and gevent with its own settings recorded, a queue split measured as two workers on two queues, the
advisor reaching a split with numbers, every bad input refused in one line before a worker starts, and the lab
pip-installed into a separate virtual environment that holds the project."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pandas as pd
import pytest
from lab_process import ROOT, harness

EXAMPLE = ROOT / "examples" / "django_shop"
TASKS = ("orders.tasks.render_invoice", "orders.tasks.notify_customer", "orders.tasks.revenue")


def _has_django(python: str) -> bool:
    return subprocess.run([python, "-c", "import django"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy of the example project, migrated into a database of its own; Django installed once (the optional
    extra `django`) where the lab's interpreter lacks it."""
    if not _has_django(sys.executable):
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "-e", f"{ROOT}[django]"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    project = tmp_path_factory.mktemp("shop") / "django_shop"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"))
    env = {"SHOP_DATABASE": str(project / "db.sqlite3")}
    migrated = subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=project, capture_output=True,
                              text=True, timeout=300, env={**_env(), **env})
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    return project, env


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "YES")}


def _run(project: Path, *args: str, env: dict[str, str], timeout: float = 240) -> tuple[subprocess.CompletedProcess,
                                                                                       dict]:
    out = harness("bench", "--app", "shop", *args, "--yes", env=env, cwd=project, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    run = json.loads((project / "results" / "latest" / "run.json").read_text())
    return out, run


@pytest.mark.parametrize("pool,concurrency", [("prefork", 2), ("threads", 4), ("gevent", 20)])
def test_the_example_app_runs_on_its_own_worker_with_its_settings_recorded(shop, pool, concurrency):
    project, env = shop
    out, run = _run(project, "--calls", "calls.jsonl", "--pool", pool, "--concurrency", str(concurrency),
                    "--tasks", "12", env=env)
    settings = run["settings"]
    argv = settings["worker_argv"]
    # The user's app, started by the celery CLI with the lab's recording included by Celery's own mechanism.
    assert argv[argv.index("-A") + 1] == "shop" and argv[argv.index("--include") + 1] == "workloads.app_hooks"
    assert "--prefetch-multiplier" not in argv  # the app's own prefetch: the run did not set one
    app = settings["app"]
    effective = app["effective"]
    # The shop's own settings (CELERY_ namespace in shop/settings.py), as the worker had them.
    assert effective["task_acks_late"] is True and effective["worker_prefetch_multiplier"] == 1
    assert effective["task_time_limit"] == 120 and effective["task_soft_time_limit"] == 100
    assert effective["accept_content"] == ["json"] and effective["task_serializer"] == "json"
    # Only the broker, the result backend and the queue are the lab's: never the shop's own Redis.
    assert "127.0.0.1:6379" not in json.dumps(effective)
    assert effective["broker_url"].startswith("redis://:**@127.0.0.1:")  # the lab's private one, password hidden
    assert {"broker_url", "result_backend", "queue"} <= set(app["overridden"])
    options = app["task_options"]
    assert options["orders.tasks.render_invoice"]["bind"] is True
    assert options["orders.tasks.notify_customer"]["autoretry_for"] == ["builtins.ConnectionError"]
    assert options["orders.tasks.notify_customer"]["max_retries"] == 3
    assert app["django"] and app["services"][0]["engine"] == "sqlite3"
    assert (project / "results" / "latest" / "calls.jsonl").read_text() == (project / "calls.jsonl").read_text()
    summary = run["summary"]
    per_task = {row["task"]: row for row in summary["per_task"]}
    assert set(per_task) == set(TASKS) and sum(row["tasks"] for row in per_task.values()) == 12
    # A mix: no speedup (NaN in run.json), tasks/s instead.
    assert summary["tasks_failed"] == 0 and summary["speedup"] != summary["speedup"]
    assert summary["throughput_per_s"] > 0
    assert "per task" in out.stdout and (project / "results" / "latest" / "per_task.png").exists()
    # Each pool ran the tasks where its record says: child processes, threads of the worker, greenlets.
    tasks = pd.read_csv(project / "results" / "latest" / "tasks.csv")
    assert set(tasks["slot"].str.split(" ").str[0]) == {"prefork": {"process"}, "threads": {"thread"},
                                                         "gevent": {"greenlet"}}[pool]
    # The waits of notify_customer (about 0.1 s of round trips, 1-2 % CPU alone) overlap on every pool here.
    if pool != "prefork":
        assert per_task["orders.tasks.notify_customer"]["cpu_share"] < 0.5


def test_a_queue_split_runs_two_workers_on_two_queues_in_one_run(shop):
    project, env = shop
    _out, run = _run(project, "--calls", "calls.jsonl", "--pool", "gevent", "--concurrency", "40",
                     "--routes", "orders.tasks.render_invoice=prefork:2", env=env)
    assert run["settings"]["app"]["routes"] == {"orders.tasks.render_invoice": f"lab.{run['run_id']}.1"}
    tasks = pd.read_csv(project / "results" / "latest" / "tasks.csv")
    routed = tasks["name"] == "orders.tasks.render_invoice"
    rendered, others = tasks[routed], tasks[~routed]
    assert len(rendered) == 8 and len(others) == 32
    # The routed task ran in the prefork worker's children (worker 2), the rest on worker 1's greenlets.
    assert set(rendered["worker"]) == {2} and rendered["slot"].str.startswith("worker 2: process").all()
    assert set(others["worker"]) == {1} and others["slot"].str.startswith("worker 1: greenlet").all()


def test_advise_on_the_example_measures_a_queue_split_with_numbers(shop):
    project, env = shop
    # 12 of the sample's 40 calls (apportioned: 2 render_invoice, 7 notify_customer, 3 revenue), so the cells where
    # the shop's prefetch multiplier of 1 costs gevent and eventlet a 2 s dispatch gap per wave stay short.
    out = harness("advise", "--app", "shop", "--calls", "calls.jsonl", "--tasks", "12", "--once", "--yes", env=env,
                  cwd=project, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Recommendation:" in out.stdout and "also measuring them split" in out.stderr
    # render_invoice computes and notify_customer waits (measured alone): the split is measured, and said with its
    # numbers whichever way it came out.
    assert "Better still, split the queues: Route" in out.stdout or "A split measured, not worth it" in out.stdout
    assert "orders.tasks.render_invoice" in out.stdout and "tasks/s" in out.stdout
    if "Better still" in out.stdout:
        assert "celery -A shop worker -P prefork -c 2 -Q cpu" in out.stdout and '"queue": "io"' in out.stdout


def _refused(out: subprocess.CompletedProcess, results: Path, *words: str) -> None:
    """Exit 2, one line naming what was wrong, no traceback, and nothing written where results would go."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    last = out.stderr.strip().splitlines()[-1]
    assert "Traceback" not in out.stderr and all(w in last for w in words), out.stderr
    assert not results.exists() or not any(results.iterdir())


@pytest.mark.parametrize("args,words", [
    (["--app", "nosuch", "--task", "a.b"], ["APP nosuch cannot be loaded", "No module named 'nosuch'"]),
    (["--app", "shop", "--task", "orders.tasks.render_invoic"],
     ["not a registered task", "did you mean 'orders.tasks.render_invoice'"]),
    (["--app", "shop", "--task", "orders.tasks.render_invoice", "--args", "[1, 2, 3, 4]"],
     ["does not accept", "too many positional arguments"]),
])
def test_bad_input_is_one_line_before_any_worker_starts(shop, tmp_path, args, words):
    project, env = shop
    out = harness("bench", *args, "--yes", "--results-dir", str(tmp_path / "results"), env=env, cwd=project)
    _refused(out, tmp_path / "results", *words)


def test_a_calls_line_is_refused_with_its_number(shop, tmp_path):
    project, env = shop
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"task": "orders.tasks.revenue"}\n{"task": "orders.tasks.nope"}\n')
    out = harness("bench", "--app", "shop", "--calls", str(unknown), "--yes", "--results-dir", str(tmp_path / "r"),
                  env=env, cwd=project)
    _refused(out, tmp_path / "r", "line 2", "'orders.tasks.nope' is not a registered task")
    refused = tmp_path / "refused.jsonl"
    refused.write_text('{"task": "orders.tasks.revenue", "kwargs": {"weeks": 3}}\n')
    out = harness("bench", "--app", "shop", "--calls", str(refused), "--yes", "--results-dir", str(tmp_path / "r"),
                  env=env, cwd=project)
    _refused(out, tmp_path / "r", "line 1", "unexpected keyword argument 'weeks'")


def test_an_app_that_does_not_configure_is_refused_with_its_cause(shop, tmp_path):
    """Django's own ImproperlyConfigured, named in the one line (an app config naming a module that is not there)."""
    project, env = shop
    broken = tmp_path / "broken"
    shutil.copytree(project, broken, ignore=shutil.ignore_patterns("results", "__pycache__"))
    apps = broken / "orders" / "apps.py"
    apps.write_text(apps.read_text().replace('name = "orders"', 'name = "orders_missing"'))
    out = harness("bench", "--app", "shop", "--task", "orders.tasks.revenue", "--yes", env=env, cwd=broken)
    _refused(out, broken / "results", "APP shop", "ImproperlyConfigured")


def test_without_yes_and_no_terminal_the_tasks_do_not_run(shop, tmp_path):
    """The user's tasks run for real: the lab says so, names the database, and a script must agree (--yes)."""
    project, env = shop
    out = subprocess.run([sys.executable, "-m", "harness", "bench", "--app", "shop", "--task", "orders.tasks.revenue",
                          "--results-dir", str(tmp_path / "r")], cwd=project, env={**_env(), **env,
                                                                                    "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    _refused(out, tmp_path / "r", "give --yes")
    assert "runs your tasks for real" in out.stderr and f"sqlite3 {env['SHOP_DATABASE']}" in out.stderr


def test_the_lab_pip_installed_in_the_projects_own_environment(shop, tmp_path):
    """The README's other way: `pip install <checkout>` into a virtual environment that holds the project, and
    `gil-lab bench` from the project's folder uses that environment's interpreter, with Django in it."""
    project, env = shop
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = str(target / "bin" / "python")
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           f"{ROOT}[django]"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    out = subprocess.run([str(target / "bin" / "gil-lab"), "bench", "--app", "shop", "--calls", "calls.jsonl",
                          "--pool", "threads", "--concurrency", "4", "--tasks", "8", "--yes",
                          "--results-dir", str(tmp_path / "results")],
                         cwd=project, env={**_env(), **env}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = json.loads((tmp_path / "results" / "latest" / "run.json").read_text())
    assert run["settings"]["worker_interpreter"]["python"] == python
    assert run["summary"]["tasks_done"] == 8 and run["settings"]["app"]["django"]


EXTRA_TASKS = '''

@shared_task(bind=True, max_retries=2)
def flaky(self, fail_times: int = 1) -> int:
    """Fails its first attempts, then succeeds: a call that Celery retries (countdown 0)."""
    if self.request.retries < fail_times:
        raise self.retry(countdown=0, exc=ConnectionError("not yet"))
    return self.request.retries


@shared_task
async def fetch_status(delay: float = 0.2) -> str:
    """An async def task, as people write them for an async client: awaits a remote call (a sleep here)."""
    import asyncio

    await asyncio.sleep(delay)
    return "ok"


from celery.exceptions import SoftTimeLimitExceeded  # noqa: E402


@shared_task(time_limit=2, soft_time_limit=1)
def stuck(seconds: float = 8.0) -> None:
    """Outlives its hard time limit, ignoring the soft one: prefork's child is killed, and no task_postrun comes.
    (Celery's pool starts the hard limit's timer when the soft one fires, so the soft one must come first.)"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            pass
'''


@pytest.fixture(scope="module")
def shop_with_extras(shop, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The shop with two more tasks of a test's: one that Celery retries, one killed by its hard time limit."""
    project, env = shop
    extra = tmp_path_factory.mktemp("shop-extra") / "django_shop"
    shutil.copytree(project, extra, ignore=shutil.ignore_patterns("results", "__pycache__"))
    tasks = extra / "orders" / "tasks.py"
    tasks.write_text(tasks.read_text() + EXTRA_TASKS)
    return extra, env


def test_a_retried_call_is_one_record_of_its_last_attempt(shop_with_extras):
    project, env = shop_with_extras
    _out, run = _run(project, "--task", "orders.tasks.flaky", "--args", "[1]", "--tasks", "4", "--pool", "threads",
                     "--concurrency", "2", env=env)
    tasks = pd.read_csv(project / "results" / "latest" / "tasks.csv")
    assert len(tasks) == 4 and tasks["task_id"].is_unique and tasks["error"].isna().all()
    assert (tasks["retries"] == 1).all() and run["summary"]["tasks_done"] == 4


def test_a_call_killed_by_its_hard_time_limit_fails_the_run_at_once(shop_with_extras):
    """prefork kills the child at the task's time_limit; Celery says so from the main process (task_failure), where
    the lab records the call as failed: the run ends with the cause, not at its deadline minutes later."""
    project, env = shop_with_extras
    out = harness("bench", "--app", "shop", "--task", "orders.tasks.stuck", "--tasks", "1", "--pool", "prefork",
                  "--concurrency", "1", "--yes", env=env, cwd=project, timeout=120)
    assert out.returncode == 1 and "TimeLimitExceeded" in out.stderr and "Traceback" not in out.stderr, out.stderr
    folder = next((project / "results").glob("*-prefork-app-*"))
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "failed" and run["settings"]["harness_timings"]["collect_s"] < 30


def test_the_apps_coroutine_task_is_awaited_on_the_asyncio_pool_and_its_orm_task_runs_in_the_executor(
        shop_with_extras):
    """The user's app on the lab's asyncio pool: an async def task awaited on the loop (its waits overlap), a plain
    task that uses the ORM in the loop's executor with its request; on threads the coroutine runs through
    asyncio.run, marked (Celery alone would return it unawaited)."""
    project, env = shop_with_extras
    _out, run = _run(project, "--task", "orders.tasks.fetch_status", "--args", "[0.2]", "--tasks", "16", "--pool",
                     "asyncio", "--concurrency", "8", env=env)
    tasks = pd.read_csv(project / "results" / "latest" / "tasks.csv")
    assert set(tasks["ran"]) == {"awaited"} and tasks["error"].isna().all()
    assert run["summary"]["max_tasks_running"] >= 6
    _out, run = _run(project, "--task", "orders.tasks.revenue", "--tasks", "8", "--pool", "asyncio", "--concurrency",
                     "4", env=env)
    tasks = pd.read_csv(project / "results" / "latest" / "tasks.csv")
    assert set(tasks["ran"]) == {"executor"} and tasks["error"].isna().all() and run["summary"]["tasks_done"] == 8
    _out, run = _run(project, "--task", "orders.tasks.fetch_status", "--args", "[0.1]", "--tasks", "8", "--pool",
                     "threads", "--concurrency", "4", env=env)
    tasks = pd.read_csv(project / "results" / "latest" / "tasks.csv")
    assert set(tasks["ran"]) == {"asyncio.run"} and any(n.startswith("ASYNCIO.RUN") for n in run["summary"]["notes"])
