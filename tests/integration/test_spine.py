"""Clicks in, segment changes out, on the real broker."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import subprocess
from collections import Counter

import msgspec
import orjson
import pytest

from app.core.events.decode import parse_ts
from app.report import persona_agreement
from app.simulator import Scenario, generate
from tests.kafka_harness import SEGSTREAM, produce, read_all, read_jsonl, user_key, wait_until_consumed
from tests.polling import poll
from tests.scrape import sample, scrape, segment_users

pytestmark = pytest.mark.integration


def test_personas_go_in_and_matching_segments_come_out(start_worker, tmp_path):
    worker = start_worker()
    truth_file = tmp_path / "truth.csv"
    subprocess.run(
        [SEGSTREAM, "simulate", "--users", "2000", "--events", "100000", "--seed", "7", "--to-kafka",
         "--topic", worker.topic("clicks"), "--broker", "kafka://127.0.0.1:9092", "--truth", str(truth_file)],
        check=True,
    )  # fmt: skip
    wait_until_consumed(worker, worker.topic("clicks"))
    changes = [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("segment-changes")))]
    segments = {}
    for change in sorted(changes, key=lambda c: int(c["event_id"].rsplit(":", 1)[1])):
        if change["kind"] == "cluster":
            segments[change["user_id"]] = change["segment"]
    with truth_file.open() as handle:
        truth = {row["user_id"]: row["persona"] for row in csv.DictReader(handle)}
    ari, coverage = persona_agreement(segments, truth)
    assert coverage >= 0.9, coverage
    assert ari >= 0.8, ari
    records = asyncio.run(read_all(worker.topic("segment-changes"), idle_s=1.0))
    assert all(record.key == orjson.loads(record.value)["user_id"].encode() for record in records)
    assert not worker.errors(), worker.errors()


def test_bad_messages_go_to_the_dead_letter_topic_and_good_ones_are_processed(start_worker):
    worker = start_worker()
    good = {"user_id": "good-1", "type": "page_view", "ts": 1767225600, "event_id": "g1"}
    messages = [
        (b"good-1", orjson.dumps(good)),
        (b"bad-1", b"\xff not json"),
        (b"bad-2", orjson.dumps({"user_id": "bad-2", "type": "purchase", "ts": 1767225600, "value": -4})),
        (b"mixed", orjson.dumps([{"user_id": "mixed", "type": "search", "ts": 1767225601}, {"type": "search"}])),
        (b"bad-3", orjson.dumps({"user_id": "bad-3", "type": "x", "ts": 4102444800})),  # the year 2100
        (b"good-2", orjson.dumps({**good, "user_id": "good-2"})),
    ]
    positions = asyncio.run(produce(worker.topic("clicks"), messages))
    wait_until_consumed(worker, worker.topic("clicks"))
    letters = {
        (letter["source"]["partition"], letter["source"]["offset"]): letter
        for letter in (orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("clicks-dlq"))))
    }
    expected = {
        positions[1]: ("not JSON", None),
        positions[2]: ("field 'value': must be a number between 0", None),
        positions[3]: ("field 'user_id'", 1),
        positions[4]: ("too far in the future", None),
    }
    assert set(letters) == set(expected)
    for position, (reason, index) in expected.items():
        letter = letters[position]
        assert reason in letter["reason"] and letter["source"]["index"] == index
        assert letter["source"]["topic"] == worker.topic("clicks")
    assert letters[positions[1]]["payload_b64"] == "/yBub3QganNvbg=="
    stored = {r.key for r in asyncio.run(read_all(worker.changelog, idle_s=1.0))}
    assert {b"good-1", b"good-2", b"mixed"} <= stored
    assert not stored & {b"bad-1", b"bad-2", b"bad-3"}
    text = scrape(worker)
    assert 'segstream_events_total{outcome="dlq"} 4.0' in text
    assert 'segstream_events_total{outcome="valid"} 3.0' in text
    assert "segstream_batch_events_count" in text and "segstream_batch_seconds_sum" in text
    # three valid events dated 2026-01-01: months before now, all in the last bucket but +Inf
    assert 'segstream_event_lag_seconds_bucket{le="86400.0"} 0.0' in text
    assert 'segstream_event_lag_seconds_bucket{le="+Inf"} 3.0' in text


def test_poison_messages_are_dead_letters_that_fit_and_their_batch_is_processed(start_worker):
    """Each of these once crashed the clicks agent or vanished, and took its neighbours' work with it."""
    worker = start_worker()
    good = {"user_id": "good-1", "type": "page_view", "ts": 1767225600, "event_id": "g1"}
    huge = orjson.dumps({"user_id": "huge", "type": "page_view", "ts": 1767225600, "page": "p" * 900_000})
    poison = [
        (b"huge", huge),  # invalid (page too long) and under max_message_bytes
        (b"big-int", msgspec.json.encode({"user_id": "big-int", "type": "identify", "ts": 1767225600,
                                          "traits": {"n": 2**70}})),  # fmt: skip
        (b"overflow", orjson.dumps({"user_id": "overflow", "type": "purchase", "ts": 1767225600, "value": 1e308})),
        (b"empty", b"[]"),
    ]
    messages = [(b"good-1", orjson.dumps(good)), *poison, (b"good-2", orjson.dumps({**good, "user_id": "good-2"}))]
    positions = asyncio.run(produce(worker.topic("clicks"), messages))
    wait_until_consumed(worker, worker.topic("clicks"))
    records = asyncio.run(read_all(worker.topic("clicks-dlq")))
    letters = {(orjson.loads(r.value)["source"]["partition"], orjson.loads(r.value)["source"]["offset"]):
               (orjson.loads(r.value), len(r.value)) for r in records}  # fmt: skip
    reasons = {positions[1]: "field 'page'", positions[2]: "field 'traits.n': integers are 64-bit",
               positions[3]: "field 'value'", positions[4]: "empty array"}  # fmt: skip
    assert set(letters) == set(reasons)
    for position, reason in reasons.items():
        assert reason in letters[position][0]["reason"]
    big, size = letters[positions[1]]
    assert size < 256 * 1024 and big["payload_bytes"] == len(huge)
    assert big["payload_sha256"] == hashlib.sha256(huge).hexdigest()
    stored = {r.key for r in asyncio.run(read_all(worker.changelog, idle_s=1.0))}
    assert {b"good-1", b"good-2"} <= stored and not stored & {key for key, _ in poison}
    assert not worker.errors(), worker.errors()


def test_same_file_gives_same_changes_through_kafka_and_replay(start_worker, tmp_path):
    lines = [message.to_bytes() for message in generate(Scenario(users=400, events=30_000, seed=11))]
    clicks = tmp_path / "clicks.jsonl"
    clicks.write_bytes(b"\n".join(lines) + b"\n")
    subprocess.run([SEGSTREAM, "replay", str(clicks), "--out", str(tmp_path / "train")], check=True)
    model = tmp_path / "train" / "model.json"
    subprocess.run(
        [SEGSTREAM, "replay", str(clicks), "--out", str(tmp_path / "fixed"), "--model", str(model), "--no-learn"],
        check=True,
    )
    replayed = read_jsonl(tmp_path / "fixed" / "segment_changes.jsonl")

    worker = start_worker(SEGSTREAM_MODEL_FILE=str(model), SEGSTREAM_LEARN="false")
    keyed = [(user_key(line), line) for line in lines]
    asyncio.run(produce(worker.topic("clicks"), keyed))
    wait_until_consumed(worker, worker.topic("clicks"))
    streamed = [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("segment-changes")))]

    def by_id(changes):
        return {c["event_id"]: {k: v for k, v in c.items() if k != "emitted_at"} for c in changes}

    assert replayed, "the fixed model should move users out of 'new'"
    assert by_id(streamed) == by_id(replayed)
    assert {c["kind"] for c in streamed} == {"cluster", "rule"}

    # Segment sizes: kept from the changes while streaming, recounted from the table after
    # a restart; both equal the memberships of replay's final profiles.
    profiles = read_jsonl(tmp_path / "fixed" / "profiles.jsonl")
    expected = Counter(("cluster", p["segment"]) for p in profiles if p["segment"] != "new")
    expected.update(("rule", rule) for p in profiles for rule in p["rules"])
    text = scrape(worker)
    assert segment_users(text) == expected
    assert sample(text, "faust_messages_received_total") >= len(lines)  # Faust's own sensor
    assert sample(text, "segstream_records_sent_total", topic=worker.topic("segment-changes")) == len(streamed)
    worker.stop()
    worker.start()
    poll(lambda: segment_users(scrape(worker)) == expected, "segment sizes recounted after a restart", timeout=90,
         every=0.5)

    # Triggers: the same ones, up to where both have certainly seen the whole stream
    # (replay fires what is due by the last event; the worker's idle advance goes on).
    last_ts = max(parse_ts(doc["ts"]) for line in lines for doc in _events_of(line))
    horizon = last_ts - 3_600.0

    def due_by_horizon(triggers):
        return {t["event_id"]: {k: v for k, v in t.items() if k != "emitted_at"}
                for t in triggers if parse_ts(t["ts"]) <= horizon}  # fmt: skip

    replayed_triggers = read_jsonl(tmp_path / "fixed" / "triggers.jsonl")
    streamed_triggers = [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("triggers")))]
    assert {t["trigger"] for t in replayed_triggers} == {"cart_abandon", "hot_lead"}
    assert due_by_horizon(streamed_triggers) == due_by_horizon(replayed_triggers)


def _events_of(line: bytes) -> list[dict]:
    doc = orjson.loads(line)
    return doc if isinstance(doc, list) else [doc]
