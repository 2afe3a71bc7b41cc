"""Offline tests start no broker and no worker: any attempt is a test failure, not a slow pass."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    from harness.lab.services.redis_broker import RedisBroker

    def refuse(self):
        raise AssertionError("an offline test tried to use a Redis broker")

    monkeypatch.setattr(RedisBroker, "__enter__", refuse)
    monkeypatch.delenv("REDIS_URL", raising=False)


@pytest.fixture
def v1(tmp_path):
    """A writable copy of the committed schema-version-1 result folders (tests/data/v1)."""
    target = tmp_path / "v1"
    shutil.copytree(DATA / "v1", target)
    return target
