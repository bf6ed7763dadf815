"""``segstream users erase`` reaches every copy of a user's data.

The erasure holds after a restart and after a rebalance.
"""

from __future__ import annotations

import asyncio
import pickle
import signal
import subprocess
import time
import urllib.error
import urllib.request

import orjson
import pytest
import redis

from tests.kafka_harness import (
    SEGSTREAM, Worker, click_record, latest_values, produce, read_all, wait_until_consumed,
)  # fmt: skip
from tests.polling import poll

pytestmark = pytest.mark.integration

CONFIG = """
[rules.segments]
carted = "count(add_to_cart, 7d) >= 1"
[rules.triggers]
cart_abandon = "20s"
"""


def _status(worker: Worker, user: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.env['SEGSTREAM_WEB_PORT']}/users/{user}", timeout=5):
            return 200
    except urllib.error.HTTPError as error:
        return error.code


def _wait(condition, what: str, worker: Worker, timeout: float = 60.0) -> None:
    poll(condition, what, timeout, every=0.5, detail=worker.log_tail)


def _redis_keys_of(client: redis.Redis, prefix: str, user: str) -> list[str]:
    """Every key under ``prefix`` that holds ``user``: their profile, and the segment indexes listing them."""
    found = []
    for key in client.scan_iter(match=f"{prefix}*"):
        name = key.decode()
        if name == f"{prefix}profile:{user}" or (
            name.startswith(f"{prefix}segment:") and client.zscore(key, user) is not None
        ):
            found.append(name)
    return sorted(found)


def _notices(worker: Worker) -> list[dict]:
    return [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("erased-users"), idle_s=1.0))]


def test_an_erased_user_leaves_the_state_redis_the_triggers_and_every_segment(tmp_path):
    config = tmp_path / "segstream.toml"
    config.write_text(CONFIG)
    env = {"SEGSTREAM_CONFIG": str(config), "SEGSTREAM_LEARN": "false", "SEGSTREAM_IDLE_AFTER_S": "2"}
    worker = Worker(tmp_path, **env).start()
    prefix = worker.env["SEGSTREAM_REDIS_PREFIX"]
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    erased, kept = "gone-1", "kept-1"
    now = time.time()
    clicks = [
        (user.encode(), orjson.dumps({"user_id": user, "type": "add_to_cart", "ts": now * 1000,
                                      "event_id": f"{user}-cart", "value": 30.0, "page": "/p/1"}))
        for user in (erased, kept)
    ]  # fmt: skip
    try:
        asyncio.run(produce(worker.topic("clicks"), clicks))
        wait_until_consumed(worker, worker.topic("clicks"), timeout=60)
        _wait(lambda: _redis_keys_of(client, prefix, erased), "the profile never reached Redis", worker)
        assert _status(worker, erased) == 200

        assert "1 erasure requests" in _erase(worker, erased)

        def exits() -> list[dict]:
            records = asyncio.run(read_all(worker.topic("segment-changes"), idle_s=1.0))
            changes = [orjson.loads(r.value) for r in records]
            return [c for c in changes if c["user_id"] == erased and c["change"] == "exited"]

        _wait(lambda: exits(), "no exited change for the erased user", worker)
        (exit_change,) = exits()
        assert (exit_change["segment"], exit_change["reason"], exit_change["features"]) == ("carted", "erased", {})
        _wait(lambda: not _redis_keys_of(client, prefix, erased), "Redis still holds the erased user", worker)
        assert _status(worker, erased) == 404
        # Downstream systems are told to erase the user too (erased-users, the user.erased webhook).
        _wait(lambda: _notices(worker), "no erasure notice", worker)
        assert [(n["user_id"], n["erased"]) for n in _notices(worker)] == [(erased, "request")]

        # The kept user's cart is abandoned; the erased user's pending trigger went with their state.
        def fired() -> list[dict]:
            return [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("triggers"), idle_s=1.0))]

        _wait(lambda: fired(), "the kept user's cart was never abandoned", worker, timeout=90)
        time.sleep(3.0)
        assert [t["user_id"] for t in fired()] == [kept]
    finally:
        worker.stop(signal.SIGTERM)

    latest = latest_values(worker.changelog)
    assert latest[erased] is None  # a tombstone: compaction removes the user's older records
    assert latest[kept] is not None

    restarted = Worker(tmp_path, name=worker.app_id, **env).start(timeout=150)
    try:
        assert _status(restarted, erased) == 404
        assert _status(restarted, kept) == 200
        time.sleep(2.0)  # profiles are written every 0.25 s: nothing may bring the erased one back
        assert _redis_keys_of(client, prefix, erased) == []

        # A second worker joins: the partitions are shared out again, and each recovers its
        # share from the changelog. Neither may bring the erased user back.
        joined = Worker(tmp_path, name=worker.app_id, **env).start(timeout=150)
        try:
            assert [_status(w, erased) for w in (restarted, joined)] == [404, 404]
            assert 200 in [_status(w, kept) for w in (restarted, joined)]
            time.sleep(2.0)
            assert _redis_keys_of(client, prefix, erased) == []
        finally:
            joined.stop(signal.SIGTERM)
    finally:
        restarted.stop(signal.SIGTERM)


def _erase(worker: Worker, *users: str) -> str:
    """``segstream users erase`` against ``worker``; its output."""
    done = subprocess.run([SEGSTREAM, "users", "erase", *users], env=worker.env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _checkpoints(worker: Worker) -> list[set[str]]:
    """The users sampled in each learner checkpoint segment-model still holds, oldest first."""
    records = asyncio.run(read_all(worker.topic("segment-model"), idle_s=1.0))
    return [set(pickle.loads(r.value)._users) for r in records if r.key == b"learner" and r.value is not None]


def _states_of(worker: Worker, user: str) -> list[bytes | None]:
    """Every record of ``user`` the user-state changelog still holds, older ones too: ``None`` is a tombstone."""
    return [r.value for r in asyncio.run(read_all(worker.changelog, idle_s=1.0)) if r.key == user.encode()]


def test_the_learner_forgets_an_erased_user_and_compaction_drops_every_older_copy(tmp_path):
    """The learner's checkpoint loses the user at once; older checkpoints and states go within the retention.

    Compacted topics (segment-model, the changelog) keep older records until the log
    cleaner runs; ``max.compaction.lag.ms`` (user_data_retention_s, 5 s here) makes the
    broker roll and clean them once a later record comes.
    """
    env = {"SEGSTREAM_USER_DATA_RETENTION_S": "5"}  # learning on: the default
    worker = Worker(tmp_path, **env).start()
    buyers = [f"buyer-{n:02d}" for n in range(60)]  # min_users (50) with evidence: a model forms
    erased, later, kept = buyers[0], buyers[1], buyers[2:]
    now = time.time()
    try:
        views = [click_record(user, "page_view", now) for user in buyers]
        orders = [click_record(user, "purchase", now + 1, value=10.0 + n) for n, user in enumerate(buyers)]
        asyncio.run(produce(worker.topic("clicks"), views + orders))
        wait_until_consumed(worker, worker.topic("clicks"), timeout=60)
        _wait(lambda: _checkpoints(worker) and erased in _checkpoints(worker)[-1], "no checkpoint holds the buyers",
              worker)  # fmt: skip
        assert _states_of(worker, erased)  # features in the changelog
        time.sleep(6.0)  # the topics' segments now began longer than max.compaction.lag.ms ago

        _erase(worker, erased)
        _wait(lambda: erased not in _checkpoints(worker)[-1], "the learner's checkpoint still holds the user", worker)
        assert set(kept) | {later} <= _checkpoints(worker)[-1]
        assert any(erased in users for users in _checkpoints(worker))  # older checkpoints: compaction's work
    finally:
        worker.stop(signal.SIGTERM)

    restarted = Worker(tmp_path, name=worker.app_id, **env).start(timeout=150)
    try:
        # The restarted learner resumed the checkpoint without the user: the next one, for
        # another erasure, has neither.
        _erase(restarted, later)
        _wait(lambda: later not in _checkpoints(restarted)[-1], "the restarted learner kept an erased user",
              restarted)  # fmt: skip
        assert erased not in _checkpoints(restarted)[-1] and set(kept) <= _checkpoints(restarted)[-1]

        # Later writes on every partition roll the segments that hold the older copies; the
        # cleaner (every 15 s) then drops them, keeping the tombstone.
        time.sleep(6.0)
        asyncio.run(produce(restarted.topic("clicks"), [click_record(user, "page_view", now + 20) for user in kept]))
        wait_until_consumed(restarted, restarted.topic("clicks"), timeout=60)
        _wait(lambda: _states_of(restarted, erased) == [None], "the changelog still holds the erased user's states",
              restarted, timeout=90)  # fmt: skip
        _wait(lambda: not any(erased in users for users in _checkpoints(restarted)),
              "segment-model still holds a checkpoint with the erased user", restarted, timeout=90)  # fmt: skip
    finally:
        restarted.stop(signal.SIGTERM)


def test_consent_false_withdraws_a_user_until_consent_true(tmp_path):
    config = tmp_path / "segstream.toml"
    config.write_text(CONFIG)
    worker = Worker(tmp_path, SEGSTREAM_CONFIG=str(config), SEGSTREAM_LEARN="false").start()
    prefix = worker.env["SEGSTREAM_REDIS_PREFIX"]
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    user, now = "shy-1", time.time()

    def click(kind: str, offset_s: float, **fields) -> tuple[bytes, bytes]:
        doc = {"user_id": user, "type": kind, "ts": (now + offset_s) * 1000, "event_id": f"{user}-{kind}-{offset_s}",
               **fields}  # fmt: skip
        return user.encode(), orjson.dumps(doc)

    try:
        asyncio.run(produce(worker.topic("clicks"), [click("add_to_cart", 0, value=12.0)]))
        _wait(lambda: _redis_keys_of(client, prefix, user), "the profile never reached Redis", worker)
        asyncio.run(produce(worker.topic("clicks"), [click("page_view", 1, consent=False),
                                                     click("add_to_cart", 2, value=99.0)]))  # fmt: skip
        wait_until_consumed(worker, worker.topic("clicks"), timeout=60)
        _wait(lambda: not _redis_keys_of(client, prefix, user), "the withdrawn user's profile stayed", worker)
        assert _status(worker, user) == 404

        asyncio.run(produce(worker.topic("clicks"), [click("search", 3, consent=True)]))
        _wait(lambda: _status(worker, user) == 200, "consent given again, but no profile", worker)
        changes = [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("segment-changes"), idle_s=1.0))]
        assert [(c["change"], c["reason"]) for c in changes if c["user_id"] == user] == [
            ("entered", "rule"), ("exited", "erased")]  # fmt: skip  # the cart after the withdrawal never counted
        expected = [(f"{user}:erased:{user}-page_view-1", "consent_withdrawn")]  # the consent: false event's id
        assert [(n["event_id"], n["erased"]) for n in _notices(worker)] == expected
    finally:
        worker.stop(signal.SIGTERM)
