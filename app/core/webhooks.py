"""Webhook subscribers, their filters, and delivery as the Standard Webhooks specification has it.

Pure logic; the HTTP client is :mod:`app.webhooks.delivery` and the agents are in
``agents/deliver_webhooks.py``.

- **Body**: ``{"type", "timestamp", "data"}``, where ``type`` is ``segment.entered``,
  ``segment.exited``, ``segment.moved``, ``trigger.<name>`` or ``user.erased``, and
  ``data`` is the published segment-change event, trigger event or erasure notice.
- **Headers**: ``webhook-id`` (the event's ``event_id``, the same on every retry),
  ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``:
  ``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body`` with the secret (a
  ``whsec_`` secret is base64-decoded first, as the reference libraries do).
- **Outcome of a response**: 2xx delivered; 5xx, 429, timeouts and connection
  errors are retried with exponential backoff and full jitter, no sooner than a
  ``Retry-After``; 410 disables the endpoint; any other status fails at once.

>>> sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
...      b'{"test": 2432232314}')  # the specification's test vector
'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
>>> crm = Subscriber("crm", "http://127.0.0.1:9/hook", "s3cret", changes=("entered",), triggers=())
>>> crm.wants({"kind": "rule", "change": "entered", "segment": "vip"}), crm.wants({"trigger": "cart_abandon"})
(True, False)
>>> crm.wants({"erased": "request", "user_id": "u1"}), event_type({"erased": "request"})
(True, 'user.erased')
>>> classify(503), classify(410), classify(404), classify(204)
('retry', 'disable', 'fail', 'delivered')
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

DELIVERED, RETRY, FAIL, DISABLE = "delivered", "retry", "fail", "disable"
CHANGES = ("entered", "exited", "moved")
KINDS = ("cluster", "rule")


@dataclass(frozen=True)
class Subscriber:
    """One endpoint and what it receives. ``None`` for a filter means everything.

    ``segments`` holds segment ids or rule names (``c2``, ``vip``); ``triggers``
    trigger names (``()`` for none). ``erasures``: erasure notices (``user.erased``),
    on by default: a system that received a user's data must learn they were erased.
    """

    name: str
    url: str
    secret: str
    changes: tuple[str, ...] = CHANGES
    kinds: tuple[str, ...] = KINDS
    segments: tuple[str, ...] | None = None
    triggers: tuple[str, ...] | None = None
    erasures: bool = True

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook {self.name!r}: url must be http(s)://, got {self.url!r}")
        if not self.secret:
            raise ValueError(f"webhook {self.name!r}: a secret is required (it signs every delivery)")
        signing_key(self.secret)  # a malformed whsec_ secret fails at start-up, not at the first delivery
        for value, allowed, what in ((self.changes, CHANGES, "changes"), (self.kinds, KINDS, "kinds")):
            unknown = set(value) - set(allowed)
            if unknown:
                raise ValueError(f"webhook {self.name!r}: unknown {what} {sorted(unknown)}; known: {list(allowed)}")

    def wants(self, event: dict[str, Any]) -> bool:
        """Whether this subscriber receives ``event`` (a segment change, a trigger or an erasure notice)."""
        if "erased" in event:
            return self.erasures
        if "trigger" in event:
            return self.triggers is None or event["trigger"] in self.triggers
        if event.get("change") not in self.changes or event.get("kind") not in self.kinds:
            return False
        return self.segments is None or event.get("segment") in self.segments


def event_type(event: dict[str, Any]) -> str:
    if "erased" in event:
        return "user.erased"
    return f"trigger.{event['trigger']}" if "trigger" in event else f"segment.{event['change']}"


def body_of(event: dict[str, Any]) -> bytes:
    """The request body: the Standard Webhooks envelope around the published event."""
    timestamp = event.get("emitted_at") or event.get("ts")
    return orjson.dumps({"type": event_type(event), "timestamp": timestamp, "data": event})


def signing_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except ValueError:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    return secret.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(signing_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }


def classify(status: int | None) -> str:
    """What a response status means for the delivery (None: timeout or connection error)."""
    if status is None or status == 429 or status >= 500:
        return RETRY
    if 200 <= status < 300:
        return DELIVERED
    return DISABLE if status == 410 else FAIL


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks for (delay seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def backoff_s(attempt: int, base_s: float, max_s: float, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:  # fmt: skip
    """Delay before retry number ``attempt`` (1, 2, ...): full jitter over base * 2^(attempt-1).

    Never sooner than ``retry_after``; never later than ``max_s`` unless the endpoint asked.

    >>> all(0.0 <= backoff_s(n, 1.0, 60.0) <= min(60.0, 2.0 ** (n - 1)) for n in range(1, 12))
    True
    >>> backoff_s(1, 1.0, 60.0, retry_after=120.0)
    120.0
    """
    ceiling = min(max_s, base_s * 2.0 ** (attempt - 1))
    delay = (rng or random).uniform(0.0, ceiling)
    return max(delay, retry_after) if retry_after is not None else delay
