"""harness.lab.services, offline: what needs no server (a password kept out of what is printed)."""
from __future__ import annotations

from harness.lab.services.base import redact


def test_redact_hides_passwords_only():
    assert redact("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("redis://user:pw@host/0") == "redis://user:***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
    # An unencoded '@' belongs to the password (redis-py reads up to the last '@'): none of it shows.
    assert redact("redis://:p@ss@w0rd@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact("error 111 connecting to redis://u:a@b@host:1/0. Refused.") == \
        "error 111 connecting to redis://u:***@host:1/0. Refused."
    assert redact("redis://127.0.0.1:6379/0?password=s3cret&db=1") == "redis://127.0.0.1:6379/0?password=***&db=1"
