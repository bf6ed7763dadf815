"""Hypothesis-drawn messages through a real worker and through replay: each lands in state or in the DLQ.

The decoder's property tests (tests/unit/test_events.py) check what each message decodes
to. This checks what the running product does with them all at once, in shared
batches: no message may take its neighbours down, every reject is one dead letter at
its own offset, every valid event is counted by outcome, and the worker stays ready.
The corpus is drawn with a fixed seed (``SEGSTREAM_FUZZ_SEED`` draws another).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.request

import msgspec
import orjson
import pytest
from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st

from app.core.events.decode import decode_message
from tables.codecs import decode_state
from tests.event_strategies import events, messages
from tests.kafka_harness import SEGSTREAM, produce, read_all, read_jsonl, wait_until_consumed
from tests.scrape import sample, scrape

pytestmark = pytest.mark.integration

SIZE = 400
SEED = int(os.environ.get("SEGSTREAM_FUZZ_SEED", "20261202"))
OUTCOMES = ("valid", "late", "duplicate", "redelivered", "withdrawn")


def _corpus(size: int, at: int) -> list[bytes]:
    """``size`` messages drawn by Hypothesis from tests/event_strategies.py with seed ``at``: any
    message, or more often an event with a few fields replaced by edge values.

    Hypothesis's first examples are its simplest (the valid event, again and again): the
    last of a few draws is the corpus.
    """
    drawn: list[list] = []

    @seed(at)
    @settings(max_examples=8, database=None, phases=[Phase.generate], deadline=None)
    @given(st.lists(st.one_of(messages, events, events), min_size=size, max_size=size))
    def draw(docs: list) -> None:
        drawn.append(docs)

    draw()
    return [msgspec.json.encode(doc) for doc in drawn[-1]]  # orjson cannot write integers beyond 64 bits


def _neighbours(count: int, now: float) -> list[bytes]:
    """Valid events of 50 users, one between each two drawn messages: the batches' innocent bystanders."""
    kinds = ("page_view", "product_view", "add_to_cart", "purchase")
    return [orjson.dumps({"user_id": f"ok-{i % 50}", "type": kinds[i % 4], "ts": (now - 3_600 + i) * 1000,
                          "event_id": f"ok-{i}", "value": 12.5, "device": "mobile"})
            for i in range(count)]  # fmt: skip


def _key(raw: bytes) -> bytes:
    """The message's first user_id, as a collector keys it (b"fuzz" when there is none)."""
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return b"fuzz"
    for item in doc if isinstance(doc, list) else [doc]:
        user = item.get("user_id") if isinstance(item, dict) else None
        if isinstance(user, str) and user:
            return user.encode(errors="surrogatepass")
    return b"fuzz"


def test_a_drawn_corpus_lands_whole_on_a_real_broker_and_in_replay(start_worker, tmp_path):
    now = time.time()
    corpus = [raw for pair in zip(_corpus(SIZE, SEED), _neighbours(SIZE, now), strict=True) for raw in pair]
    decoded = [decode_message(raw, now=now) for raw in corpus]
    events = sum(len(d.events) for d in decoded)
    rejects = sum(len(d.rejects) for d in decoded)
    assert events > SIZE and rejects, "the corpus must hold valid events beyond the neighbours', and rejects"

    worker = start_worker(SEGSTREAM_LEARN="false")
    positions = asyncio.run(produce(worker.topic("clicks"), [(_key(raw), raw) for raw in corpus]))
    wait_until_consumed(worker, worker.topic("clicks"), timeout=120)
    letters = [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("clicks-dlq"), idle_s=1.0))]
    lettered = sorted((letter["source"]["partition"], letter["source"]["offset"]) for letter in letters)
    expected = sorted(positions[i] for i, d in enumerate(decoded) for _ in d.rejects)
    assert lettered == expected, f"seed {SEED}: dead letters at other offsets than the decoder's rejects"
    text = scrape(worker)
    counted = sum(sample(text, "segstream_events_total", outcome=o) or 0.0 for o in OUTCOMES)
    assert (counted, sample(text, "segstream_events_total", outcome="dlq")) == (events, rejects), f"seed {SEED}"
    assert not worker.errors(), worker.errors()
    port = worker.env["SEGSTREAM_WEB_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
        assert answer.status == 200

    clicks = tmp_path / "fuzz.jsonl"
    clicks.write_bytes(b"\n".join(corpus) + b"\n")
    done = subprocess.run([SEGSTREAM, "replay", str(clicks), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    replayed = (tmp_path / "out" / "dlq.jsonl").read_bytes().splitlines()
    assert len(replayed) == rejects, f"seed {SEED}: replay dead-lettered {len(replayed)}, the decoder {rejects}"
    latest = {r.key: r.value for r in asyncio.run(read_all(worker.changelog, idle_s=1.0))}
    stored = {key.decode() for key, raw in latest.items() if raw is not None and not decode_state(raw).withdrawn}
    profiled = {profile["user_id"] for profile in read_jsonl(tmp_path / "out" / "profiles.jsonl")}
    assert stored == profiled, f"seed {SEED}: the worker and replay keep state for different users"
    print(f"corpus of {len(corpus)} messages (seed {SEED}): {events} valid events, all counted; {rejects} "
          f"rejects, {len(letters)} dead letters on the broker, {len(replayed)} in replay; worker ready, no error")
