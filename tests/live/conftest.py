"""Live fixtures: one real private Redis for the session, and a run measured against it."""
from __future__ import annotations

import pytest

from harness.lab.services.redis_broker import RedisBroker
from harness.model.spec import build_spec
from harness.pipeline import run_bench


@pytest.fixture(scope="session")
def redis_url():
    with RedisBroker(url=None) as broker:
        yield broker.url


@pytest.fixture
def bench(redis_url, tmp_path):
    """Run one real measurement against the session's Redis; returns the run as loaded back."""
    def _bench(**settings):
        return run_bench(build_spec(**settings), results_dir=tmp_path / "results", redis_url=redis_url,
                         log=lambda _line: None)
    return _bench
