"""Webhooks on the real broker, to a real local receiver that checks signatures and fails on purpose."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time

import orjson
import pytest

from tests.kafka_harness import SEGSTREAM, produce, read_all, wait_until_consumed
from tests.polling import poll
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

KEY = b"receiver key"
T0 = 1_767_225_600


def _events(users: range) -> list[tuple[bytes, bytes]]:
    """Per user: five product views (hot_lead fires) and a purchase (enters rule segment 'buyer')."""
    messages = []
    for n in users:
        user = f"w{n:02d}"
        kinds = ["product_view"] * 5 + ["purchase"]
        for i, kind in enumerate(kinds):
            event = {"user_id": user, "type": kind, "ts": T0 + 10 * i, "event_id": f"{user}-{i}", "page": f"/p/{i}"}
            if kind == "purchase":
                event["value"] = 20.0
            messages.append((user.encode(), orjson.dumps(event)))
    return messages


def test_every_event_reaches_every_subscriber_at_least_once_signed(start_worker, tmp_path):
    secret = "whsec_" + base64.b64encode(KEY).decode()
    with Receiver({"/ok": KEY, "/flaky": KEY, "/gone": KEY, "/moved": KEY}, hang_s=3.0) as receiver:
        config = tmp_path / "segstream.toml"
        config.write_text(f"""
webhook_timeout_s = 1.0
webhook_max_attempts = 4
webhook_backoff_s = 0.5
webhook_backoff_max_s = 2.0

[rules]
rfm_segments = false
[rules.segments]
buyer = "purchases >= 1"

[[webhooks]]
name = "ok"
url = "{receiver.url('/ok')}"
secret = "{secret}"

[[webhooks]]
name = "flaky"
url = "{receiver.url('/flaky')}"
secret = "{secret}"

[[webhooks]]
name = "gone"
url = "{receiver.url('/gone')}"
secret = "{secret}"
changes = ["entered"]
triggers = []
""")
        worker = start_worker(SEGSTREAM_CONFIG=str(config))
        asyncio.run(produce(worker.topic("clicks"), _events(range(12))))
        wait_until_consumed(worker, worker.topic("clicks"))
        changes = [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("segment-changes"), idle_s=2.0))]
        fired = [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("triggers"), idle_s=2.0))]
        published = {e["event_id"] for e in changes + fired}
        assert {c["segment"] for c in changes} == {"buyer"} and len(changes) == 12
        assert {t["trigger"] for t in fired} == {"hot_lead"} and len(fired) == 12

        # Everything arrives at the healthy and at the flaky endpoint, each id at least once.
        poll(lambda: set(receiver.ids("/ok", 200)) == published, "all events at /ok", timeout=90, every=0.5)
        poll(lambda: set(receiver.ids("/flaky", 200)) == published, "all events at /flaky, after retries",
             timeout=90, every=0.5)
        assert all(r.signature_ok for r in receiver.requests), "every request carries a valid signature"
        flaky = [r for r in receiver.requests if r.path == "/flaky"]
        assert len(flaky) >= 2 * len(published)  # one failure, then the delivery, for every id
        for webhook_id in published:  # retries repeat the id and the body, with a fresh timestamp and signature
            attempts = [r for r in flaky if r.webhook_id == webhook_id]
            assert len({r.body for r in attempts}) == 1
            assert orjson.loads(attempts[0].body)["data"]["event_id"] == webhook_id

        # 410 disables the endpoint: what it wanted goes to the dead-letter topic. The first
        # batch's attempts were already in flight; after the 410, nothing more is sent to it.
        letters = []

        def dead_lettered(expected: set[str]):
            def check() -> bool:
                records = asyncio.run(read_all(worker.topic("webhooks-dlq"), idle_s=1.0))
                letters[:] = [orjson.loads(r.value) for r in records]
                return {letter["webhook_id"] for letter in letters} == expected

            return check

        wanted_by_gone = {c["event_id"] for c in changes}
        poll(dead_lettered(wanted_by_gone), "every event for /gone in webhooks-dlq", timeout=90, every=0.5)
        sent_to_gone = len(receiver.ids("/gone"))
        asyncio.run(produce(worker.topic("clicks"), _events(range(12, 15))))
        wait_until_consumed(worker, worker.topic("clicks"))
        later = {f"w{n:02d}:1" for n in range(12, 15)}  # their 'buyer' entries
        poll(dead_lettered(wanted_by_gone | later), "the later events for /gone in webhooks-dlq", timeout=90, every=0.5)
        assert len(receiver.ids("/gone")) == sent_to_gone
        assert all(letter["subscriber"] == "gone" and "410" in letter["reason"] for letter in letters)
        wanted_by_gone |= later

        # The dead letters replay to the endpoint's new address, with their ids.
        done = subprocess.run([SEGSTREAM, "webhooks", "replay", "--subscriber", "gone", "--url", receiver.url("/moved")],
                              env=worker.env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{len(wanted_by_gone)} delivered" in done.stdout
        assert set(receiver.ids("/moved", 200)) == wanted_by_gone
        assert not worker.errors(), worker.errors()


def test_erased_users_reach_subscribers_as_user_erased_unless_they_opt_out(start_worker, tmp_path):
    """A request (segstream users erase) and a consent withdrawal each send one user.erased webhook."""
    secret = "whsec_" + base64.b64encode(KEY).decode()
    with Receiver({"/crm": KEY, "/stats": KEY}) as receiver:
        config = tmp_path / "segstream.toml"
        config.write_text(f"""
[[webhooks]]
name = "crm"
url = "{receiver.url('/crm')}"
secret = "{secret}"

[[webhooks]]
name = "stats"
url = "{receiver.url('/stats')}"
secret = "{secret}"
erasures = false
""")
        worker = start_worker(SEGSTREAM_CONFIG=str(config), SEGSTREAM_LEARN="false")
        withdrawn = {"user_id": "shy", "type": "page_view", "ts": T0, "event_id": "shy-0", "consent": False}
        asyncio.run(produce(worker.topic("clicks"), _events(range(2)) + [(b"shy", orjson.dumps(withdrawn))]))
        wait_until_consumed(worker, worker.topic("clicks"))
        done = subprocess.run([SEGSTREAM, "users", "erase", "w01"], env=worker.env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

        def erased_at(path: str) -> list[tuple[str, str]]:
            bodies = [orjson.loads(r.body) for r in receiver.requests if r.path == path and r.status == 200]
            return sorted((b["data"]["user_id"], b["data"]["erased"]) for b in bodies if b["type"] == "user.erased")

        want = [("shy", "consent_withdrawn"), ("w01", "request")]
        poll(lambda: erased_at("/crm") == want, "a user.erased webhook per erased user at /crm", timeout=60)
        time.sleep(2.0)  # one dispatcher serves both subscribers: /stats would have had them by now
        assert erased_at("/stats") == [] and receiver.ids("/stats", 200)
        assert all(r.signature_ok for r in receiver.requests)
