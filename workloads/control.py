"""Control messages between the harness and the lab's agents on other hosts, authenticated beyond the broker's password.

Anyone who can reach the broker can put a message on an agent's queue, so an agent acts only on a message signed
with the fleet's shared secret (HMAC-SHA256 over the message's canonical JSON), issued within WINDOW_S of the
agent's clock, and not seen before (its nonce). An agent signs its answers the same way, so the harness knows them
for its agent's. JSON only; the secret itself never travels, and is never printed or stored with a run.

Imported by both sides (the harness's harness.lab.fleet, the agent's workloads.agent), standard library only.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from typing import Any

# How far a message's issue time may be from the receiver's clock, either way. Agents' clocks are measured against
# the broker's (harness.analysis.clock) and may be off by seconds; a message replayed later than this is stale.
WINDOW_S = 60.0
# The nonces a receiver remembers: more than a window's worth of messages at any rate the lab sends.
REMEMBERED = 10_000


class ControlRefused(Exception):
    """A control message that is not acted on: why, in one line (never the secret, never the message's body)."""


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()  # JSON only: no NaN


def _mac(secret: bytes, fields: dict[str, Any]) -> str:
    return hmac.new(secret, _canonical(fields), hashlib.sha256).hexdigest()


def sign(secret: bytes, sender: str, body: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """An envelope for `body` from `sender`: a fresh nonce, the issue time and the MAC over all of it."""
    fields = {"sender": sender, "nonce": secrets.token_hex(16), "issued": time.time() if now is None else now,
              "body": body}
    return {**fields, "mac": _mac(secret, fields)}


class Verifier:
    """Checks envelopes for one receiver: the MAC, the issue time, and that the nonce is new (a replay is refused)."""

    def __init__(self, secret: bytes, window_s: float = WINDOW_S) -> None:
        self._secret = secret
        self.window_s = window_s
        self._seen: OrderedDict[str, float] = OrderedDict()

    def verify(self, envelope: Any, now: float | None = None) -> dict[str, Any]:
        """The envelope's body, or ControlRefused saying why not."""
        now = time.time() if now is None else now
        if not isinstance(envelope, dict) or set(envelope) != {"sender", "nonce", "issued", "body", "mac"}:
            raise ControlRefused("not a control envelope (sender, nonce, issued, body, mac)")
        fields = {k: envelope[k] for k in ("sender", "nonce", "issued", "body")}
        if not isinstance(envelope["mac"], str) or not hmac.compare_digest(envelope["mac"], _mac(self._secret, fields)):
            raise ControlRefused(f"bad signature on a message from {str(envelope['sender'])[:40]!r}: not signed with "
                                 "the fleet's secret")
        issued = envelope["issued"]
        if not isinstance(issued, (int, float)) or abs(now - issued) > self.window_s:
            raise ControlRefused(f"stale message from {envelope['sender']!r}: issued {now - float(issued):+.1f} s from "
                                 f"now, outside +-{self.window_s:g} s")
        nonce = str(envelope["nonce"])
        if nonce in self._seen:
            raise ControlRefused(f"replayed message from {envelope['sender']!r} (nonce seen before)")
        self._seen[nonce] = now
        while len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
        body = envelope["body"]
        if not isinstance(body, dict):
            raise ControlRefused("a control message's body must be a JSON object")
        return body


def new_secret() -> str:
    """A fresh shared secret for a fleet, as hex (for the agents' --secret-file)."""
    return secrets.token_hex(32)
