"""Webhook subscribers, signing, backoff and the dispatcher's decisions (no HTTP: a scripted endpoint)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random

import orjson
import pytest

from app.core.webhooks import Subscriber, backoff_s, body_of, headers, retry_after_s
from app.webhooks.delivery import Attempt
from app.webhooks.dispatch import Dispatcher, RetryPolicy

CHANGE = {"event_id": "u1:3", "user_id": "u1", "kind": "rule", "change": "entered", "segment": "vip",
          "ts": "2026-01-01T00:00:00.000Z", "emitted_at": "2026-01-01T00:00:01.000Z"}  # fmt: skip
TRIGGER = {"event_id": "u1:cart_abandon:1", "user_id": "u1", "trigger": "cart_abandon",
           "ts": "2026-01-01T00:30:00.000Z"}  # fmt: skip


def test_signature_verifies_with_an_independent_hmac():
    body = body_of(CHANGE)
    sent = headers("whsec_" + base64.b64encode(b"key bytes").decode(), "u1:3", 1_767_225_600, body)
    expected = hmac.new(b"key bytes", b"u1:3.1767225600." + body, hashlib.sha256).digest()
    assert sent["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    assert sent["webhook-id"] == "u1:3" and sent["webhook-timestamp"] == "1767225600"
    assert orjson.loads(body) == {"type": "segment.entered", "timestamp": CHANGE["emitted_at"], "data": CHANGE}


def test_filters_by_change_kind_segment_and_trigger():
    only_vip = Subscriber("a", "http://127.0.0.1:1/", "k", segments=("vip",), triggers=())
    assert only_vip.wants(CHANGE) and not only_vip.wants({**CHANGE, "segment": "c2"}) and not only_vip.wants(TRIGGER)
    clusters = Subscriber("b", "http://127.0.0.1:1/", "k", kinds=("cluster",), triggers=("cart_abandon",))
    assert not clusters.wants(CHANGE) and clusters.wants(TRIGGER)


@pytest.mark.parametrize("bad", [{"url": "ftp://x"}, {"secret": ""}, {"secret": "whsec_%%%"}, {"changes": ("left",)}])
def test_bad_subscribers_fail_at_start_up(bad):
    with pytest.raises(ValueError):
        Subscriber(**{"name": "x", "url": "http://127.0.0.1:1/", "secret": "k", **bad})


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_s("7", now=0.0) == 7.0
    assert retry_after_s("Thu, 01 Jan 1970 00:01:00 GMT", now=30.0) == 30.0
    assert retry_after_s("soon", now=0.0) is None and retry_after_s(None, now=0.0) is None


def test_backoff_grows_is_capped_and_jittered():
    rng = random.Random(1)
    delays = [backoff_s(n, 1.0, 8.0, rng=rng) for n in range(1, 8) for _ in range(50)]
    assert max(delays) <= 8.0 and min(delays) >= 0.0 and len(set(delays)) > 300  # jittered
    assert backoff_s(3, 1.0, 8.0, retry_after=30.0) == 30.0


class _Endpoint:
    """Answers each attempt from a script: (outcome, status, retry_after) in order."""

    def __init__(self, *script):
        self.script, self.calls = list(script), []

    async def __call__(self, subscriber, webhook_id, body):
        self.calls.append((subscriber.name, webhook_id))
        outcome, status, wait = self.script.pop(0) if self.script else ("delivered", 200, None)
        return Attempt(outcome, status, f"HTTP {status}", wait)


def _dispatcher(endpoint, subscribers=None, **policy):
    retries, letters, seen = [], [], []

    async def retry(level, record):
        retries.append((level, record))

    async def dead_letter(record):
        letters.append(record)

    dispatcher = Dispatcher(subscribers or [Subscriber("crm", "http://127.0.0.1:1/", "k")], endpoint, retry,
                            dead_letter, policy=RetryPolicy(**policy), observe=seen.append, clock=lambda: 100.0,
                            rng=random.Random(0))  # fmt: skip
    return dispatcher, retries, letters, seen


def test_a_retryable_failure_goes_to_retry_level_1_then_delivers():
    endpoint = _Endpoint(("retry", 503, None))
    dispatcher, retries, letters, seen = _dispatcher(endpoint, max_attempts=3, base_s=2.0)
    asyncio.run(dispatcher.deliver([CHANGE]))
    ((level, record),) = retries
    assert level == 1 and record["attempts"] == 1 and 100.0 <= record["not_before"] <= 102.0
    asyncio.run(dispatcher.attempt(record))
    assert seen == ["retried", "delivered"] and not letters
    assert [call[1] for call in endpoint.calls] == ["u1:3", "u1:3"]  # the same webhook-id every time


def test_after_the_last_attempt_the_record_is_dead_lettered_with_its_reason():
    dispatcher, retries, letters, _ = _dispatcher(_Endpoint(*[("retry", 500, None)] * 3), max_attempts=2)
    asyncio.run(dispatcher.deliver([CHANGE]))
    asyncio.run(dispatcher.attempt(retries[0][1]))
    assert len(retries) == 1 and letters[0]["attempts"] == 2 and "after 2 attempts" in letters[0]["reason"]


def test_retry_after_is_honoured_up_to_the_cap():
    dispatcher, retries, _, _ = _dispatcher(_Endpoint(("retry", 429, 30.0)), base_s=1.0, max_s=20.0)
    asyncio.run(dispatcher.deliver([CHANGE]))
    assert retries[0][1]["not_before"] == 120.0  # 30 s asked, capped at 20 s


def test_410_disables_the_endpoint_and_its_later_events_are_dead_lettered_unsent():
    endpoint = _Endpoint(("disable", 410, None))
    dispatcher, _, letters, seen = _dispatcher(endpoint)
    asyncio.run(dispatcher.deliver([CHANGE]))
    asyncio.run(dispatcher.deliver([TRIGGER]))
    assert len(endpoint.calls) == 1 and [letter["webhook_id"] for letter in letters] == ["u1:3", "u1:cart_abandon:1"]
    assert "disabled" in seen and all("410" in letter["reason"] for letter in letters)


def test_a_client_error_is_not_retried():
    dispatcher, retries, letters, _ = _dispatcher(_Endpoint(("fail", 400, None)))
    asyncio.run(dispatcher.deliver([CHANGE]))
    assert not retries and letters[0]["reason"] == "HTTP 400"


def test_each_subscriber_gets_only_what_it_wants():
    subscribers = [Subscriber("changes", "http://127.0.0.1:1/", "k", triggers=()),
                   Subscriber("carts", "http://127.0.0.1:1/", "k", changes=(), triggers=("cart_abandon",))]  # fmt: skip
    endpoint = _Endpoint()
    dispatcher, _, _, _ = _dispatcher(endpoint, subscribers)
    asyncio.run(dispatcher.deliver([CHANGE, TRIGGER]))
    assert sorted(endpoint.calls) == [("carts", "u1:cart_abandon:1"), ("changes", "u1:3")]


def test_a_dead_endpoint_trips_the_breaker_for_first_attempts_until_a_retry_succeeds():
    endpoint = _Endpoint(*[("retry", None, None)] * 5)
    dispatcher, retries, letters, _ = _dispatcher(endpoint)
    for n in range(8):  # one at a time, so the count of failures is exact
        asyncio.run(dispatcher.deliver([{**CHANGE, "event_id": f"u1:{n}"}]))
    assert len(endpoint.calls) == 5 and len(retries) == 8 and not letters  # three went to level 1 unsent
    assert "circuit open" in retries[-1][1]["last_error"] and retries[-1][1]["attempts"] == 1
    asyncio.run(dispatcher.attempt(retries[-1][1]))  # a retry still sends, succeeds, and closes it
    asyncio.run(dispatcher.deliver([{**CHANGE, "event_id": "u1:9"}]))
    assert [call[1] for call in endpoint.calls[-2:]] == ["u1:7", "u1:9"]
