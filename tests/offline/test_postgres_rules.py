"""The db workload's PostgreSQL rules that need no server: where the lab's sessions point, what a refusal says
(never a password), and the one line when there is no server at all."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from harness.lab.services import postgres
from harness.lab.services.postgres import DatabaseError, _why, check_available, with_session_options


def test_sessions_put_the_labs_schema_first_and_keep_the_users_own_options():
    url = with_session_options("postgresql://u:p%40ss@db.example:5433/app?sslmode=require&options=-c%20work_mem%3D64MB")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.password == "p%40ss" and query["sslmode"] == ["require"]
    assert query["options"] == ["-c work_mem=64MB -c search_path=gil_lab -c max_parallel_workers_per_gather=0"]
    assert "+" not in parts.query  # libpq decodes %20, not +


def test_a_refused_password_names_the_user_and_never_the_password():
    url = "postgresql://alice:hunter2@127.0.0.1:5432/postgres"
    failed = RuntimeError('connection failed: FATAL:  password authentication failed for user "alice"')
    assert _why(failed, url) == "the server refused the password for user alice"
    echoed = RuntimeError("could not parse postgresql://alice:hunter2@127.0.0.1:5432/postgres (hunter2)")
    assert "hunter2" not in _why(echoed, url)


def test_no_server_anywhere_is_one_line_saying_how_to_get_one(monkeypatch):
    monkeypatch.delenv("PG_URL", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(postgres, "SERVER_FOLDERS", ())
    monkeypatch.setattr(postgres, "packaged_binary", lambda *_: None)
    with pytest.raises(DatabaseError) as refused:
        check_available()
    message = str(refused.value)
    assert "\n" not in message and "apt-get install postgresql" in message and "brew install postgresql" in message
    assert "docker compose up -d postgres" in message and "PG_URL=" in message and "pip install pgserver" in message


def test_a_pg_url_of_another_kind_is_refused_before_connecting(monkeypatch):
    monkeypatch.setenv("PG_URL", "mysql://root:s3cret@127.0.0.1/db")
    with pytest.raises(DatabaseError) as refused:
        check_available()
    assert "postgresql://user:password@host:port/database" in str(refused.value) and "s3cret" not in str(refused.value)
