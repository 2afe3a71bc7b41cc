"""The db and http workloads on the lab's own PostgreSQL and HTTP service (issue 24, first part): the green trap
measured and said. gevent with psycopg2 runs its waiting tasks one at a time, and its summary names the driver;
psycopg 3 and psycopg2 with psycogreen overlap the same waits, and so do the HTTP clients."""
from __future__ import annotations

import importlib.util
from urllib.parse import urlsplit

import pytest
from lab_process import harness

from harness.lab.interpreters import find_free_threaded, find_subinterpreter_python
from harness.lab.services.base import free_port
from harness.lab.services.postgres import PostgresServer, find_postgres
from harness.model.pools import executor_threads

if find_postgres() is None:
    import os

    if os.environ.get("CI"):
        raise RuntimeError("CI has no PostgreSQL server: .ci/run should have installed it")
    pytestmark = pytest.mark.skip(reason="no PostgreSQL server here (apt-get install postgresql): db tests skipped")


def test_gevent_with_psycopg2_runs_its_waits_one_at_a_time_and_says_the_driver_is_why(bench):
    run = bench(pool="gevent", workload="db", driver="psycopg2", concurrency=4, tasks=8, duration=0.25)
    s = run.summary
    assert s.max_tasks_running == 1 and s.tasks_done == 8
    serial = [n for n in s.notes if n.startswith("SERIAL:")]
    assert serial and "the psycopg2 driver does not yield to the event loop" in serial[0], s.notes
    assert run.manifest.settings.extra["database"]["rows"] > 0


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2+psycogreen"])
def test_a_driver_that_yields_overlaps_the_waits_on_gevent(bench, driver):
    """The issue's bar: a speedup of at least 0.7 x the concurrency for pure waits (measured here 7.0-7.4 of 8)."""
    run = bench(pool="gevent", workload="db", driver=driver, concurrency=8, tasks=16, duration=0.5)
    s = run.summary
    assert s.speedup >= 0.7 * 8 and s.max_tasks_running > 4 and not any(n.startswith("SERIAL:") for n in s.notes)


@pytest.mark.parametrize("client", ["requests", "httpx", "urllib"])
def test_http_clients_overlap_their_waits_on_gevent(bench, client):
    """The http workload on the lab's HTTP service: each client's sockets are gevent's, so its waits overlap (measured
    here: requests 7.45x, httpx 7.5x, urllib 7.69x of 8)."""
    run = bench(pool="gevent", workload="http", driver=client, concurrency=8, tasks=16, duration=0.5)
    s = run.summary
    assert s.tasks_done == 16 and s.speedup >= 0.7 * 8 and not any(n.startswith("SERIAL:") for n in s.notes)
    assert run.manifest.settings.extra["http_service"]["url"].startswith("http://127.0.0.1:")


def test_a_scan_costs_the_servers_cpu_which_the_summary_shows_apart_from_other_processes(bench):
    """DB_QUERY=scan: the worker only waits while PostgreSQL scans; the server's processes are sampled as the run's
    service, so their CPU is neither the worker's nor another process's (measured here at 4 threads on 2 cores:
    PostgreSQL 1.87 cores, the worker 0.03, others 0.06; SERVER-BOUND)."""
    run = bench(pool="threads", workload="db", driver="psycopg", db_query="scan", concurrency=4, tasks=8, duration=0.3)
    s, calibration = run.summary, run.manifest.settings.calibration
    assert calibration["query"] == "scan" and calibration["scans"] >= 1 and calibration["scan_ms"] > 0
    assert s.tasks_done == 8 and s.service_cores_used is not None
    assert s.service_cores_used > 0.5 > s.mean_cores_used
    assert s.other_cores_used is not None and s.other_cores_used < s.service_cores_used


def test_pg_url_uses_the_users_server_inside_the_labs_schema_only(bench, monkeypatch):
    """The user's own server (here a second PostgreSQL the test starts): the lab's table is in the schema gil_lab and
    nothing is written elsewhere; the password is in no file the run keeps."""
    with PostgresServer() as theirs:
        monkeypatch.setenv("PG_URL", str(theirs.url))
        run = bench(pool="threads", workload="db", driver="psycopg2", concurrency=2, tasks=4, duration=0.1)
        assert run.summary.tasks_done == 4
        database = run.manifest.settings.extra["database"]
        assert database["private"] is False and database["schema"] == "gil_lab" and "***" in database["url"]
        tables = theirs.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
                                "('pg_catalog', 'information_schema')")
        assert tables == [("gil_lab", "items")]
        password = str(urlsplit(str(theirs.url)).password)
        assert not [f for f in run.path.rglob("*") if f.is_file() and password in f.read_text(errors="replace")]


def test_an_unusable_pg_url_is_one_line_and_exit_2_without_the_password_or_a_folder(tmp_path):
    with PostgresServer() as theirs:
        parts = urlsplit(str(theirs.url))
        wrong = str(theirs.url).replace(f":{parts.password}@", ":not-the-password@")
        nobody_there = f"postgresql://lab:secret-one@127.0.0.1:{free_port()}/postgres"
        for url, why in ((wrong, "refused the password for user lab"), (nobody_there, "Connection refused")):
            done = harness("bench", "--pool", "threads", "--workload", "db", "--tasks", "2", "--duration", "0.1",
                           "--results-dir", "results", env={"PG_URL": url}, cwd=tmp_path)
            err = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(err) == 1 and why in err[0] and "PG_URL" in err[0], done.stderr
            assert "not-the-password" not in done.stderr + done.stdout and "secret-one" not in done.stderr
            assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.skipif(find_free_threaded() is None, reason="no free-threaded interpreter here (LAB_FREETHREADED_PYTHON)")
def test_a_driver_that_cannot_run_free_threaded_is_refused_before_a_worker_starts(tmp_path):
    """psycopg2 has no free-threaded wheel (the lab's worker environment installs none) and, built from source, its C
    extension turns the GIL back on: either way DRIVER=psycopg2 on a free-threaded worker is one line, exit 2."""
    done = harness("bench", "--interpreter", str(find_free_threaded()), "--pool", "threads", "--workload", "db",
                   "--driver", "psycopg2", "--tasks", "2", "--results-dir", "results", cwd=tmp_path, timeout=900)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and err[-1].startswith("error: DRIVER=psycopg2"), done.stderr
    assert "does not import" in err[-1] or "turns the GIL back on" in err[-1]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.skipif(importlib.util.find_spec("pycurl") is None, reason="pycurl has no wheel for this Python here")
@pytest.mark.parametrize(("pool", "serial"), [("gevent", True), ("threads", False)])
def test_pycurl_waits_in_c_which_blocks_a_green_pool_but_not_threads(bench, pool, serial):
    """libcurl does the whole request in C: it releases the GIL (threads overlap the waits) but never yields to a
    green pool's hub (measured here, 8 slots, 0.25 s: gevent 0.98x, eventlet 0.99x, threads 7.71x)."""
    run = bench(pool=pool, workload="http", driver="pycurl", concurrency=8, tasks=16, duration=0.25)
    s = run.summary
    said = [n for n in s.notes if n.startswith("SERIAL:")]
    assert s.tasks_done == 16
    if serial:
        assert s.max_tasks_running == 1 and said and "the pycurl driver does not yield" in said[0]
    else:
        assert s.speedup >= 0.7 * 8 and not said


def test_a_driver_that_does_not_load_in_a_subinterpreter_is_refused_on_the_interpreters_pool(tmp_path):
    """pycurl's C extension does not declare subinterpreter support: on the interpreters pool every task would fail
    on import, so the run is refused first, in one line (requests loads there and runs: 1.35-1.44x of 2 here)."""
    python = find_subinterpreter_python()
    if python is None:
        pytest.skip("no CPython 3.13+ for the interpreters pool here")
    done = harness("bench", "--interpreter", python, "--pool", "interpreters", "--workload", "http", "--driver",
                   "pycurl", "--tasks", "2", "--results-dir", "results", cwd=tmp_path, timeout=600)
    # Before it, the progress lines of making the 3.13 worker environment (once) and adding pycurl to it.
    errors = [line for line in done.stderr.strip().splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and done.stderr.strip().endswith(errors[0]), done.stderr
    assert "pycurl" in errors[0] and ("subinterpreter" in errors[0] or "does not import" in errors[0]), errors[0]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.parametrize("work, client", [("db", "psycopg-async"), ("db", "asyncpg"), ("http", "httpx-async"),
                                          ("http", "aiohttp")])
def test_async_drivers_are_awaited_on_the_asyncio_pool_and_overlap_the_waits(bench, work, client):
    """The db and http workloads' coroutine twins through async clients, a connection per slot on the pool's loop
    (measured here at 20 and 50 in flight: psycopg-async 18.9x, asyncpg 19.2x of 20, httpx-async 35.8x, aiohttp 42.8x
    of 50; at 8, as the sync drivers are held to above)."""
    if importlib.util.find_spec(client.removesuffix("-async")) is None:
        pytest.skip(f"{client} has no wheel for this Python here: DRIVER={client} is refused")
    run = bench(pool="asyncio", workload=work, driver=client, concurrency=8, tasks=16, duration=0.5)
    s = run.summary
    assert s.tasks_done == 16 and set(run.foreground["ran"]) == {"awaited"}
    assert s.speedup >= 0.7 * 8 and s.max_tasks_running > 4 and not any(n.startswith("SERIAL:") for n in s.notes)


def test_a_sync_driver_on_the_asyncio_pool_runs_in_its_executor(bench):
    run = bench(pool="asyncio", workload="db", driver="psycopg", concurrency=8, tasks=16, duration=0.25)
    assert set(run.foreground["ran"]) == {"executor"} and any(n.startswith("EXECUTOR") for n in run.summary.notes)
    # At most the executor's threads at once (min(32, cores + 4)), a threads pool of that size.
    assert run.summary.ideal_speedup == min(8, executor_threads(run.manifest.environment.cores))
    assert run.summary.max_tasks_running <= executor_threads(run.manifest.environment.cores)
