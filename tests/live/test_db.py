"""The db and http workloads on the lab's own PostgreSQL and HTTP service (issue 24, first part): the green trap
measured and said. gevent with psycopg2 runs its waiting tasks one at a time, and its summary names the driver;
psycopg 3 and psycopg2 with psycogreen overlap the same waits, and so do the HTTP clients."""
from __future__ import annotations

import pytest

from harness.lab.services.postgres import find_postgres

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
